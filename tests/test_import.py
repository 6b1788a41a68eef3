"""``import shipyard`` stays light: no server, store, Kubernetes or ML library is loaded."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "pydantic",
    "kubernetes",
    "httpx",
    "numpy",
    "torch",
    "sklearn",
    "xgboost",
    "lightgbm",
    "onnxruntime",
    "pandas",
    "shipyard.server",
    "shipyard.core.store",
    "shipyard.platform",
)


def _run(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON line."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_import_shipyard_loads_no_heavy_module() -> None:
    code = (
        "import json, sys\n"
        "import shipyard\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
        "for h in heavy))\n"
        "print(json.dumps({'loaded': loaded, 'version': shipyard.__version__}))\n"
    )
    out = _run(code)
    assert out["loaded"] == [], f"import shipyard pulled in: {out['loaded']}"
    assert out["version"]


def test_client_is_reachable_lazily() -> None:
    code = (
        "import json, sys\n"
        "import shipyard\n"
        "before = 'shipyard.client' in sys.modules\n"
        "Client = shipyard.Client\n"
        "from shipyard import Client as C2\n"
        "print(json.dumps({'before': before, 'after': 'shipyard.client' in sys.modules,\n"
        "  'name': Client.__name__, 'same': Client is C2,\n"
        "  'has': all(hasattr(Client, m) for m in ('apply', 'get', 'list', 'delete', 'watch',\n"
        "  'logs', 'wait', 'embedded'))}))\n"
    )
    out = _run(code)
    assert out == {"before": False, "after": True, "name": "Client", "same": True, "has": True}


def test_unknown_attribute_is_an_attribute_error() -> None:
    code = (
        "import json, shipyard\n"
        "try:\n"
        "    shipyard.NoSuchThing\n"
        "    r = 'no error'\n"
        "except AttributeError as e:\n"
        "    r = str(e)\n"
        "print(json.dumps({'r': r}))\n"
    )
    assert "NoSuchThing" in str(_run(code)["r"])
