"""Metrics collection for trials, while they run.

Three sources, as Katib's collectors: **StdOut** (the primary container's log, parsed with
Katib's default regex or the experiment's ``filter.metricsFormat``), **File** (a file the
trial writes, TEXT parsed like StdOut or JSON lines), and **Push** (``report_metrics`` from
inside the trial posts to the platform, which appends to a per-trial JSON-lines file).

The trial controller reads the source on every reconcile. A :class:`Tails` cache remembers
how far each file was read and what it held, so a running trial costs only its new bytes;
the cache is derived data (dropping it means re-reading from the start), not controller
state.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.core.resource import Obj
from shipyard.tuning.api import DEFAULT_METRICS_FORMAT

Values = dict[str, list[float]]


def _number(raw: object) -> float | None:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class Parser:
    """Turns lines into metric values for the metric names an experiment asks for."""

    def __init__(self, names: Iterable[str], fmt: str = "TEXT", patterns: list[str] | None = None):
        self.names = set(names)
        self.json = fmt == "JSON"
        self.patterns = [re.compile(p) for p in (patterns or [DEFAULT_METRICS_FORMAT])]

    def feed(self, lines: Iterable[str], into: Values) -> None:
        for line in lines:
            if self.json:
                self._json(line, into)
                continue
            for pattern in self.patterns:
                for m in pattern.finditer(line):
                    name, value = m.group(1), _number(m.group(2))
                    if name in self.names and value is not None:
                        into.setdefault(name, []).append(value)

    def _json(self, line: str, into: Values) -> None:
        line = line.strip()
        if not line.startswith("{"):
            return
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        inner = record.get("metrics")
        metrics: dict[str, object] = inner if isinstance(inner, dict) else record
        for name, raw in metrics.items():
            value = _number(raw)
            if name in self.names and value is not None:
                into.setdefault(name, []).append(value)


@dataclass
class _Tail:
    offset: int = 0
    partial: bytes = b""
    values: Values = field(default_factory=dict)


class Tails:
    """Incremental reading of growing files, keyed by (trial uid, path)."""

    def __init__(self) -> None:
        self._tails: dict[tuple[str, str], _Tail] = {}
        self._lock = threading.Lock()

    def read(self, owner: str, path: Path, parser: Parser, *, final: bool = False) -> Values:
        key = (owner, str(path))
        with self._lock:
            tail = self._tails.setdefault(key, _Tail())
        try:
            with open(path, "rb") as fh:
                fh.seek(tail.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return {k: list(v) for k, v in tail.values.items()}
        tail.offset += len(chunk)
        data = tail.partial + chunk
        lines = data.split(b"\n")
        tail.partial = b"" if final else lines.pop()
        parser.feed((b.decode("utf-8", "replace") for b in lines), tail.values)
        return {k: list(v) for k, v in tail.values.items()}

    def forget(self, owner: str) -> None:
        with self._lock:
            for key in [k for k in self._tails if k[0] == owner]:
                del self._tails[key]


def parse_all(text: str, parser: Parser) -> Values:
    out: Values = {}
    parser.feed(text.splitlines(), out)
    return out


def observation(values: Values, names: list[str]) -> list[Obj]:
    """Katib's observation: min, max and latest of each metric, as strings."""
    out: list[Obj] = []
    for name in names:
        seen = values.get(name)
        if not seen:
            continue
        out.append(
            {"name": name, "min": repr(min(seen)), "max": repr(max(seen)), "latest": repr(seen[-1])}
        )
    return out


def trial_dir(data_dir: Path, namespace: str, trial: str, uid: str) -> Path:
    """Where a trial's collected files live (pushed metrics, File collector output)."""
    return Path(data_dir) / "tuning" / namespace / trial / uid[:8]


def push_path(data_dir: Path, namespace: str, trial: str, uid: str) -> Path:
    return trial_dir(data_dir, namespace, trial, uid) / "pushed.jsonl"


def local_metrics_file(data_dir: Path, namespace: str, trial: str, uid: str, path: str) -> Path:
    """The File collector's path as this machine sees it: the container path under the
    trial's own folder, so parallel trials never share a file."""
    return trial_dir(data_dir, namespace, trial, uid) / "files" / path.lstrip("/")
