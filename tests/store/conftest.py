"""The PostgreSQL fixtures: one throw-away cluster for the whole run, a fresh database per test.

Without PostgreSQL installed the PostgreSQL tests skip locally; in CI
(`AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1`) they fail, so that coverage never silently disappears.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg_cluster
from tests.real_agents import REQUIRE_ENV, required
from tests.store.backends import Backend


@pytest.fixture(scope="session")
def pg() -> Iterator[pg_cluster.Cluster]:
    try:
        with pg_cluster.cluster() as c:
            yield c
    except pg_cluster.Unavailable as exc:
        if required():
            pytest.fail(f"{exc} ({REQUIRE_ENV}=1, so the PostgreSQL tests may not be skipped)")
        pytest.skip(str(exc))


@pytest.fixture
def pg_url(pg: pg_cluster.Cluster) -> str:
    """The URL (with its password) of a new, empty database on the shared cluster."""
    return pg.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each contract test runs on both: a SQLite file, and a database on the real cluster."""
    state = tmp_path / "state"
    state.mkdir()
    if request.param == "sqlite":
        return Backend("sqlite", str(state / "sessions.db"), state)
    return Backend("postgresql", request.getfixturevalue("pg_url"), state)
