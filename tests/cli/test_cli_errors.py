"""Bad input through the ``shipyard`` command: a non-zero exit and one line on stderr saying
what is wrong (file, line, document, field), never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from platform_fixtures import shipyard_cmd
from shipyard.client import Client
from shipyard.server.serve import free_port


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


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


POD = """apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec: {containers: [{name: main, command: ["true"]}]}
"""


def test_malformed_yaml_names_file_and_line(
    cli_env: dict[str, str], client: Client, tmp_path: Path
) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n spec: [\n")
    line = one_line_error(sy(cli_env, "apply", "-f", str(f)))
    assert str(f) in line
    assert "line 5" in line
    assert "malformed YAML" in line

    line = one_line_error(sy(cli_env, "apply", "-f", "-", stdin="a: [\n"))
    assert "stdin" in line and "line" in line
    assert client.list("pods") == []


def test_invalid_third_document_writes_nothing(
    cli_env: dict[str, str], client: Client, tmp_path: Path
) -> None:
    f = tmp_path / "three.yaml"
    bad = POD.replace("NAME", "c").replace('["true"]}', '["true"], colour: red}')
    f.write_text(POD.replace("NAME", "a") + "---\n" + POD.replace("NAME", "b") + "---\n" + bad)
    line = one_line_error(sy(cli_env, "apply", "-f", str(f)))
    assert str(f) in line and "document 3" in line
    assert "spec.containers[0].colour" in line
    assert client.list("pods") == []


def test_invalid_name_and_missing_field(
    cli_env: dict[str, str], client: Client, tmp_path: Path
) -> None:
    line = one_line_error(sy(cli_env, "apply", "-f", "-", stdin=POD.replace("NAME", "Bad_Name")))
    assert "metadata.name" in line and "Bad_Name" in line
    nocontainers = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n"
    line = one_line_error(sy(cli_env, "apply", "-f", "-", stdin=nocontainers))
    assert "spec.containers" in line and "required" in line


def test_unknown_kind(cli_env: dict[str, str], client: Client) -> None:
    widget = "apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n"
    line = one_line_error(sy(cli_env, "apply", "-f", "-", stdin=widget))
    assert "Widget" in line and "Pod" in line
    line = one_line_error(sy(cli_env, "get", "widgets"))
    assert "widgets" in line and "pods" in line


def test_not_found_and_bad_arguments(cli_env: dict[str, str], client: Client) -> None:
    assert "nobody" in one_line_error(sy(cli_env, "get", "pod", "nobody"))
    assert "nobody" in one_line_error(sy(cli_env, "describe", "pod/nobody"))
    assert "nobody" in one_line_error(sy(cli_env, "logs", "nobody"))
    assert "no such file" in one_line_error(sy(cli_env, "apply", "-f", "/nonexistent/x.yaml"))
    assert "output format" in one_line_error(sy(cli_env, "get", "pods", "-o", "xml"))
    assert "--for" in one_line_error(sy(cli_env, "wait", "pod/x", "--for=bogus"))
    assert "duration" in one_line_error(sy(cli_env, "wait", "pod/x", "--timeout=soon"))
    assert "namespace" in one_line_error(
        sy(cli_env, "apply", "-n", "ghost", "-f", "-", stdin=POD.replace("NAME", "g"))
    )


def test_markup_like_text_in_errors_prints_as_is(cli_env: dict[str, str], tmp_path: Path) -> None:
    d = tmp_path / "[" / "weird]"  # the path reads .../[/weird]/x.yaml
    d.mkdir(parents=True)
    f = d / "x.yaml"
    f.write_text("a: [\n")
    line = one_line_error(sy(cli_env, "apply", "-f", str(f)))
    assert "[/weird]" in line


def test_server_not_running_is_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, SHIPYARD_URL=f"http://127.0.0.1:{free_port()}")
    for args in (["get", "pods"], ["apply", "-f", "-"], ["logs", "x"]):
        line = one_line_error(sy(env, *args, stdin=POD.replace("NAME", "a")))
        assert "cannot reach Shipyard" in line and env["SHIPYARD_URL"] in line


def test_up_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        proc = sy(
            dict(os.environ),
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            timeout=60,
        )
    line = one_line_error(proc)
    assert str(port) in line and "--port" in line


def test_a_pipeline_file_that_fails_names_the_file_and_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    body = tmp_path / "body.py"
    body.write_text("from shipyard import dsl\n\n\n@dsl.pipeline\ndef p():\n    undefined_step()\n")
    line = one_line_error(sy(cli_env, "compile", str(body)))
    assert f"{body}, line 6: NameError: name 'undefined_step' is not defined" in line
    syntax = tmp_path / "syntax.py"
    syntax.write_text("from shipyard import dsl\ndef p(:\n")
    assert f"{syntax}, line 2: SyntaxError" in one_line_error(sy(cli_env, "run", str(syntax)))
    ported = tmp_path / "ported.py"
    ported.write_text("from kfp import dsl\n")
    line = one_line_error(sy(cli_env, "run", str(ported)))
    assert f"{ported}, line 1: ModuleNotFoundError: No module named 'kfp'" in line
    assert "change `from kfp import dsl` to `from shipyard import dsl`" in line


def test_running_a_pipeline_file_that_is_not_there_names_it(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """A mistyped path said "run_pipeline takes a @dsl.pipeline function, ..." before."""
    for name in ("pipline.py", "pipline.yaml", "pipline"):
        missing = tmp_path / name
        assert one_line_error(sy(cli_env, "run", str(missing))) == f"error: {missing}: no such file"
