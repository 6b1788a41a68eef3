"""The dashboard's built assets, served by the platform's HTTP server.

``dist/`` is made by ``scripts/ui-build.sh`` (``npm install`` + ``vite build`` from this folder's
``package.json``); it is never committed. ``/`` serves ``index.html`` to browsers (the SPA
routes with the URL's hash, so no other HTML path is needed) and ``/ui/assets/...`` the
hashed bundles. Without a build, browsers get a page saying how to make one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

DIST = Path(__file__).resolve().parent / "dist"
PREFIX = "/ui"

_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Shipyard</title>
<h1>Shipyard</h1><p>The dashboard is not built. Run <code>make up</code> (or
<code>bash scripts/ui-build.sh</code>) in the repository, then reload. The REST API is at
<a href="/apis">/apis</a> and its documentation at <a href="/docs">/docs</a>.</p>"""


def wants_html(accept: str) -> bool:
    """True for a browser's navigation request (``Accept: text/html,...``)."""
    return "text/html" in accept


def index() -> Response:
    page = DIST / "index.html"
    if not page.is_file():
        return HTMLResponse(_NOT_BUILT, status_code=200)
    return HTMLResponse(page.read_bytes(), headers={"Cache-Control": "no-cache"})


def assets_app() -> Any:
    """The built files under ``/ui`` (hashed names: cached by browsers)."""
    return StaticFiles(directory=DIST, check_dir=False)
