"""Fixtures shared by the whole test suite.

PostgreSQL: ``postgres_url`` starts one real server for the session (see ``tests/pg.py``);
``postgres_db_url`` gives each test its own fresh, empty database on it. Tests that use them
are marked ``postgres``. Without PostgreSQL binaries they are skipped locally, but fail when
``CI`` is set: CI must never silently skip the PostgreSQL suite (``scripts/test-services.sh``
installs the server).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pg import PostgresServer, find_bindir  # tests/ is on sys.path (rootdir conftest)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no "
            "initdb on PATH): run `bash scripts/test-services.sh` to install them"
        )
        if _in_ci():
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)
    with PostgresServer(bindir) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a database on the session's PostgreSQL server (shared by all tests)."""
    return postgres_server.url(postgres_server.create_database("shipyard"))


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database for this test only (emptied and reused afterwards)."""
    name = postgres_server.acquire_database()
    yield postgres_server.url(name)
    postgres_server.release_database(name)


from k8s.kube_cluster import kube_cluster  # noqa: E402,F401  tier 2 cluster (make test-k8s)
from platform_fixtures import cli_env, client, data_dir  # noqa: E402,F401  shared fixtures
