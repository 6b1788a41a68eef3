"""The ``shipyard`` command as users run it: a real subprocess of the venv's script, talking
to an embedded platform through SHIPYARD_URL (the ``cli_env`` fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import yaml

from platform_fixtures import shipyard_cmd
from shipyard.client import Client

INERT = 'resources: {requests: {cpu: "10000"}}'  # more CPU than any machine: stays Pending


def sy(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*shipyard_cmd(), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """A failed command: non-zero exit, one line on stderr, no traceback anywhere."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def pod_yaml(name: str, code: str = "pass", *, inert: bool = False, labels: str = "{}") -> str:
    command = json.dumps([sys.executable, "-u", "-c", code])
    return textwrap.dedent(
        f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, labels: {labels}}}
        spec:
          restartPolicy: Never
          containers:
            - name: main
              command: {command}
              {INERT if inert else ""}
        """
    )


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.strip().splitlines()]


def test_apply_file_dir_and_stdin(cli_env: dict[str, str], client: Client, tmp_path: Path) -> None:
    f = tmp_path / "one.yaml"
    f.write_text(pod_yaml("from-file", inert=True))
    assert ok(sy(cli_env, "apply", "-f", str(f))).strip() == "pod/from-file created"
    assert ok(sy(cli_env, "apply", "-f", str(f))).strip() == "pod/from-file unchanged"

    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "a.yaml").write_text(pod_yaml("dir-a", inert=True))
    (d / "sub" / "b.yml").write_text(pod_yaml("dir-b", inert=True))
    (d / "notes.txt").write_text("not a manifest")
    # Like kubectl: a folder gives its own files; -R adds its subfolders.
    assert ok(sy(cli_env, "apply", "-f", str(d))).splitlines() == ["pod/dir-a created"]
    out = ok(sy(cli_env, "apply", "-R", "-f", str(d)))
    assert out.splitlines() == ["pod/dir-a unchanged", "pod/dir-b created"]

    out = ok(sy(cli_env, "apply", "-f", "-", stdin=pod_yaml("from-stdin", inert=True)))
    assert out.strip() == "pod/from-stdin created"

    changed = pod_yaml("from-file", inert=True, labels="{v: '2'}")
    assert ok(sy(cli_env, "apply", "-f", "-", stdin=changed)).strip() == "pod/from-file configured"

    dry = pod_yaml("dry", inert=True)
    assert "dry run" in ok(sy(cli_env, "apply", "--dry-run", "-f", "-", stdin=dry))
    names = {p["metadata"]["name"] for p in client.list("pods")}
    assert names == {"from-file", "dir-a", "dir-b", "from-stdin"}


def test_get_formats_and_names(cli_env: dict[str, str], client: Client) -> None:
    client.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\n"
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: team-a-quota, namespace: team-a}\n"
        'spec: {hard: {pods: "5", requests.cpu: "1", requests.memory: 1Gi}}\n'
    )
    for name, labels in (("web", "{app: web}"), ("db", "{app: db}")):
        client.apply(yaml.safe_load(pod_yaml(name, inert=True, labels=labels)))

    table = rows(ok(sy(cli_env, "get", "pods")))
    assert table[0][:3] == ["NAME", "READY", "STATUS"]
    assert sorted(r[0] for r in table[1:]) == ["db", "web"]
    assert all(r[2] == "Pending" for r in table[1:])
    assert sorted(r[0] for r in rows(ok(sy(cli_env, "get", "Pod")))[1:]) == ["db", "web"]
    assert [r[0] for r in rows(ok(sy(cli_env, "get", "po", "-l", "app=web")))[1:]] == ["web"]
    assert [r[0] for r in rows(ok(sy(cli_env, "get", "pod/db")))[1:]] == ["db"]
    assert [r[0] for r in rows(ok(sy(cli_env, "get", "pods", "web")))[1:]] == ["web"]

    wide = rows(ok(sy(cli_env, "get", "pods", "-o", "wide")))
    assert len(wide[0]) > len(table[0])

    docs = list(yaml.safe_load_all(ok(sy(cli_env, "get", "pods", "-o", "yaml"))))
    assert sorted(d["metadata"]["name"] for d in docs) == ["db", "web"]
    one = yaml.safe_load(ok(sy(cli_env, "get", "pod", "web", "-o", "yaml")))
    assert one["kind"] == "Pod" and one["metadata"]["labels"] == {"app": "web"}
    listed = json.loads(ok(sy(cli_env, "get", "po", "-o", "json")))
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["db", "web"]
    got = json.loads(ok(sy(cli_env, "get", "pod/web", "-o", "json")))
    assert got["metadata"]["name"] == "web"
    assert ok(sy(cli_env, "get", "pods", "-o", "name")).split() == ["pod/db", "pod/web"]

    ns = rows(ok(sy(cli_env, "get", "ns")))
    assert {"default", "team-a"} <= {r[0] for r in ns[1:]}

    quota = ok(sy(cli_env, "get", "quota", "-n", "team-a"))
    assert "team-a-quota" in quota
    assert "pods: 0/5" in quota and "requests.memory: 0/1Gi" in quota
    assert len(quota.strip().splitlines()) == 2, "a row must not wrap when piped"
    everywhere = rows(ok(sy(cli_env, "get", "resourcequotas", "-A")))
    assert everywhere[0][0] == "NAMESPACE"
    assert everywhere[1][:2] == ["team-a", "team-a-quota"]

    empty = sy(cli_env, "get", "pods", "-n", "team-a")
    assert empty.returncode == 0 and "No resources found" in empty.stderr


def test_describe(cli_env: dict[str, str], client: Client) -> None:
    client.apply(yaml.safe_load(pod_yaml("desc", "print('x')", labels="{app: desc}")))
    client.wait("pod", "desc", phase="Succeeded", timeout=30)
    out = ok(sy(cli_env, "describe", "pod", "desc"))
    assert "Name:" in out and "desc" in out
    assert "app=desc" in out
    assert "Succeeded" in out
    assert "terminated" in out and "Completed" in out
    assert "Conditions" in out and "Spec:" in out
    assert "app=desc" in ok(sy(cli_env, "describe", "po/desc"))


def test_logs_and_follow(cli_env: dict[str, str], client: Client, tmp_path: Path) -> None:
    client.apply(yaml.safe_load(pod_yaml("printer", "print('first'); print('second')")))
    client.wait("pod", "printer", phase="Succeeded", timeout=30)
    assert ok(sy(cli_env, "logs", "printer")) == "first\nsecond\n"
    assert ok(sy(cli_env, "logs", "pod/printer", "--tail", "1")) == "second\n"

    gate = tmp_path / "go"
    code = (
        "import os, time\nprint('waiting')\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\nprint('released')"
    )
    client.apply(yaml.safe_load(pod_yaml("follower", code)))
    client.wait("pod", "follower", phase="Running", timeout=30)
    proc = subprocess.Popen(
        [*shipyard_cmd(), "logs", "-f", "follower"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "waiting\n"
        threading.Timer(0.1, gate.touch).start()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out == "released\n"


def test_wait_variants(cli_env: dict[str, str], client: Client) -> None:
    client.apply(yaml.safe_load(pod_yaml("quick", "pass")))
    out = ok(
        sy(
            cli_env,
            "wait",
            "pod/quick",
            "--for=jsonpath='{.status.phase}'=Succeeded",
            "--timeout=30s",
        )
    )
    assert "condition met" in out
    ok(sy(cli_env, "wait", "pod", "quick", "--for=condition=Initialized", "--timeout=10s"))
    ok(sy(cli_env, "wait", "pod/quick", "--for=phase=Succeeded", "--timeout=10s"))

    client.apply(yaml.safe_load(pod_yaml("stuck", inert=True)))
    line = one_line_error(sy(cli_env, "wait", "pod/stuck", "--for=condition=Ready", "--timeout=1s"))
    assert "timed out" in line and "pod/stuck" in line and "phase=Pending" in line
    line = one_line_error(
        sy(cli_env, "wait", "pod/stuck", "--for=jsonpath={.status.phase}=Running", "--timeout=1s")
    )
    assert "timed out" in line

    client.delete("pod", "stuck")
    ok(sy(cli_env, "wait", "pod/stuck", "--for=delete", "--timeout=30s"))


def test_delete_by_name_and_file(cli_env: dict[str, str], client: Client, tmp_path: Path) -> None:
    for name in ("del-a", "del-b"):
        client.apply(yaml.safe_load(pod_yaml(name, inert=True)))
    assert ok(sy(cli_env, "delete", "pod", "del-a", "del-b")).splitlines() == [
        "pod/del-a deleted",
        "pod/del-b deleted",
    ]
    f = tmp_path / "p.yaml"
    f.write_text(pod_yaml("del-f", inert=True))
    ok(sy(cli_env, "apply", "-f", str(f)))
    assert ok(sy(cli_env, "delete", "-f", str(f))).strip() == "pod/del-f deleted"
    assert client.list("pods") == []
    line = one_line_error(sy(cli_env, "delete", "po/del-a"))
    assert "del-a" in line and "not found" in line
