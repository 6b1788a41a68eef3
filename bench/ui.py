"""Dashboard list speed: the pipeline-runs page with 10,000 runs in the store.

Seeds 10,000 PipelineRuns straight into a platform's store (no controllers run, so nothing
executes), serves the REST API + dashboard on 127.0.0.1 and opens the runs list in Debian's
Chromium (Playwright). Figures, each the median of several loads:

- page load: navigation to the first page of runs drawn (server-side pagination, 50 rows);
- next page: clicking "Next" until the second page is drawn;
- peers, measured in the same run: the API call behind one page (limit=50, as=Table), and
  the unpaginated list of all 10,000 runs that a client-side-paginated UI would fetch.

    .venv/bin/python bench/ui.py [--runs 10000] [--loads 5]

The goal (issue 9) is a list page with 10,000 runs rendered in under 300 ms; this prints the
figures and ratios, it asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from shipyard.core.config import load
from shipyard.pipelines.api import PIPELINE_RUN
from shipyard.platform import Platform
from shipyard.server.app import create_app
from shipyard.server.ui import DIST

SPEC = {
    "parameters": {},
    "components": {"c": {"function": "c", "source": "def c():\n    pass\n"}},
    "tasks": [{"name": "t", "component": "c"}],
}


def seed(platform: Platform, n: int) -> None:
    for i in range(n):
        platform.store.create(
            PIPELINE_RUN.key,
            {
                "apiVersion": "shipyard.dev/v1",
                "kind": "PipelineRun",
                "metadata": {"name": f"run-{i:05d}", "namespace": "default"},
                "spec": {"pipelineSpec": SPEC, "parameters": {}},
                "status": {"phase": "Succeeded", "durationSeconds": 1.0 + i % 7},
            },
            phase="Succeeded",
        )


def serve(platform: Platform) -> tuple[str, uvicorn.Server]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(platform), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return url, server


def timed(fn: Any, loads: int) -> float:
    times = []
    for _ in range(loads):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--loads", type=int, default=5)
    args = ap.parse_args()
    if not (DIST / "index.html").is_file():
        raise SystemExit("build the dashboard first: bash scripts/ui-build.sh")
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: bash scripts/ui-test-deps.sh")
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    platform = Platform(load(data_dir=tmp))  # not started: no controller touches the seeded runs
    t0 = time.perf_counter()
    seed(platform, args.runs)
    print(f"seeded {args.runs} runs in {time.perf_counter() - t0:.1f} s")
    url, server = serve(platform)
    base = f"{url}/apis/shipyard.dev/v1/namespaces/default/pipelineruns"
    with httpx.Client() as http:
        api_page = timed(lambda: http.get(base, params={"limit": 50, "as": "Table"}), args.loads)
        api_all = timed(lambda: http.get(base), max(1, args.loads // 2))
    profile = tempfile.mkdtemp(prefix="bench-ui-chromium-")
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = ctx.new_page()
        page.goto(f"{url}/#/default/runs")  # warm: assets cached, as for a returning user
        page.wait_for_selector('tr[data-name="run-00000"]')

        def load_list() -> None:
            page.goto("about:blank")
            page.goto(f"{url}/#/default/runs")
            page.wait_for_selector('tr[data-name="run-00049"]')

        def next_page() -> None:
            page.get_by_role("button", name="Next →").click()
            page.wait_for_selector('tr[data-name="run-00050"]')
            page.get_by_role("button", name="← Prev").click()
            page.wait_for_selector('tr[data-name="run-00000"]')

        ui_load = timed(load_list, args.loads)
        ui_next = timed(next_page, args.loads) / 2
        ctx.close()
    server.should_exit = True
    platform.store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(profile, ignore_errors=True)
    print(f"runs in store                      {args.runs}")
    print(f"runs page load (nav → rows drawn)  {ui_load:8.1f} ms   goal < 300 ms")
    print(f"next/prev page (click → drawn)     {ui_next:8.1f} ms")
    print(f"peer: API, one page (50, Table)    {api_page:8.1f} ms")
    print(f"peer: API, all {args.runs} runs       {api_all:8.1f} ms")
    print(f"ratio page load / unpaginated API  {ui_load / api_all:8.2f}")
    print(f"ratio page load / one-page API     {ui_load / api_page:8.2f}")


if __name__ == "__main__":
    main()
