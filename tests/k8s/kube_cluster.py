"""Tier 2: a real Kubernetes control plane on 127.0.0.1 for the session.

etcd (Debian's etcd-server), kube-apiserver with token auth and RBAC, kube-controller-manager
and kube-scheduler (1.20.2, built from Debian's source by ``scripts/k8s-build.sh``), plus
two test node agents (``node_agent.py``, the one stand-in: for the kubelet). deploy/'s Role
and RoleBinding are applied for real, and the runtime under test uses a token for the
``shipyard`` ServiceAccount's user, so the least-privilege Role is what it runs with.

Runs only under ``make test-k8s`` (``SHIPYARD_K8S=1``); elsewhere the tests that need it
are skipped with that reason. With ``SHIPYARD_K8S=1``, missing binaries are a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "shipyard"
TOKENS = {
    "admin": ("admin-token", "admin", "system:masters"),
    "runtime": ("runtime-token", f"system:serviceaccount:{NAMESPACE}:shipyard", ""),
    "nobody": ("nobody-token", "nobody", ""),
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bindir() -> Path:
    env = os.environ.get("SHIPYARD_K8S_BIN")
    if env:
        return Path(env)
    return Path(os.environ.get("SHIPYARD_K8S_CACHE", "/var/cache/shipyard-k8s/1.20.2")) / "bin"


@dataclass
class Cluster:
    workdir: Path
    url: str = ""
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    agents: list[Any] = field(default_factory=list)

    def kubeconfig(self, who: str) -> Path:
        path = self.workdir / f"{who}.kubeconfig"
        if not path.exists():
            path.write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "clusters": [
                            {
                                "name": "t",
                                "cluster": {"server": self.url, "insecure-skip-tls-verify": True},
                            }
                        ],
                        "users": [{"name": who, "user": {"token": TOKENS[who][0]}}],
                        "contexts": [
                            {
                                "name": who,
                                "context": {"cluster": "t", "user": who, "namespace": NAMESPACE},
                            }
                        ],
                        "current-context": who,
                    }
                )
            )
        return path

    def api(self, who: str = "admin") -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig(who)))

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (kept open by the child)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))

    def _tail(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
        return ""

    def stop(self) -> None:
        for agent in self.agents:
            with contextlib.suppress(Exception):
                agent.stop()
        for _, proc in reversed(self.procs):
            proc.terminate()
        for _, proc in reversed(self.procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def start(workdir: Path) -> Cluster:
    bins = bindir()
    for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        if not (bins / b).exists():
            pytest.fail(f"{bins / b} missing: run `bash scripts/k8s-build.sh` (make test-k8s)")
    c = Cluster(workdir)
    _openssl("genrsa", "-out", str(workdir / "sa.key"), "2048")
    _openssl("rsa", "-in", str(workdir / "sa.key"), "-pubout", "-out", str(workdir / "sa.pub"))
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
        "-keyout", str(workdir / "node.key"), "-out", str(workdir / "node.crt"),
    )  # fmt: skip
    (workdir / "tokens.csv").write_text(
        "".join(f'{tok},{user},{user},"{grp}"\n' for tok, user, grp in TOKENS.values())
    )
    etcd_port, peer_port, api_port = _port(), _port(), _port()
    c._spawn(
        "etcd",
        [
            str(bins / "etcd"), "--data-dir", str(workdir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
        ],
    )  # fmt: skip
    c.url = f"https://127.0.0.1:{api_port}"
    c._spawn(
        "kube-apiserver",
        [
            str(bins / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}", "--insecure-port=0",
            f"--cert-dir={workdir / 'certs'}",
            f"--token-auth-file={workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={workdir / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
        ],
    )  # fmt: skip
    admin = c.kubeconfig("admin")
    _wait_api(c)
    c._spawn(
        "kube-controller-manager",
        [
            str(bins / "kube-controller-manager"), f"--kubeconfig={admin}",
            "--leader-elect=false", "--port=0", "--secure-port=0",
            f"--service-account-private-key-file={workdir / 'sa.key'}",
            f"--root-ca-file={workdir / 'certs' / 'apiserver.crt'}",
            "--concurrent-gc-syncs=5",
        ],
    )  # fmt: skip
    c._spawn(
        "kube-scheduler",
        [
            str(bins / "kube-scheduler"), f"--kubeconfig={admin}",
            "--leader-elect=false", "--port=0", "--secure-port=0",
        ],
    )  # fmt: skip
    return c


def _wait_api(c: Cluster, timeout: float = 120.0) -> None:
    from kubernetes import client

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name, proc in c.procs:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited ({proc.returncode}):\n{c._tail(name)}")
        try:
            api = c.api("admin")
            client.CoreV1Api(api).list_namespace(_request_timeout=5)
            return
        except Exception as exc:
            last = str(exc)
            time.sleep(0.5)
    pytest.fail(f"kube-apiserver not ready: {last}\n{c._tail('kube-apiserver')}")


def _apply_deploy_rbac(c: Cluster) -> None:
    """deploy/'s Namespace, ServiceAccount, Role and RoleBinding, as kubectl renders them."""
    from kubernetes import client, utils

    out = subprocess.run(
        [shutil.which("kubectl") or "kubectl", "kustomize", str(ROOT / "deploy")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wanted = {"Namespace", "ServiceAccount", "Role", "RoleBinding"}
    api = c.api("admin")
    for doc in yaml.safe_load_all(out.stdout):
        if doc and doc["kind"] in wanted:
            utils.create_from_dict(api, doc)
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the serviceaccount controller makes "default"
        sas = core.list_namespaced_service_account(NAMESPACE).items
        if any(sa.metadata.name == "default" and sa.secrets for sa in sas):
            return
        time.sleep(0.3)
    pytest.fail("the default ServiceAccount (and its token) never appeared")


def _start_agents(c: Cluster) -> None:
    from k8s.node_agent import NodeAgent

    nodes = [
        ("node-gpu", {"accelerator": "a100", "zone": "a"}, {"nvidia.com/gpu": "2"}),
        ("node-cpu", {"zone": "b"}, {}),
    ]
    for name, labels, extra in nodes:
        agent = NodeAgent(
            c.api("admin"),
            name,
            c.workdir / name,
            labels={"kubernetes.io/hostname": name, **labels},
            capacity={"cpu": "8", "memory": "16Gi", "pods": "110", **extra},
            cert=c.workdir / "node.crt",
            key=c.workdir / "node.key",
        )
        c.agents.append(agent.start())


def _wait_nodes_schedulable(c: Cluster) -> None:
    from kubernetes import client

    core = client.CoreV1Api(c.api("admin"))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        nodes = core.list_node().items
        if len(nodes) == len(c.agents) and not any(n.spec.taints for n in nodes):
            return
        time.sleep(0.5)
    pytest.fail("nodes kept their not-ready taints")


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not os.environ.get("SHIPYARD_K8S"):
        pytest.skip("tier 2 (a real kube-apiserver): run `make test-k8s`")
    c = start(tmp_path_factory.mktemp("kube"))
    try:
        _apply_deploy_rbac(c)
        _start_agents(c)
        _wait_nodes_schedulable(c)
        yield c
    finally:
        c.stop()
