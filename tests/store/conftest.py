"""The PostgreSQL fixtures: one throw-away cluster for the whole run, a fresh database per test.

Without PostgreSQL installed the PostgreSQL tests skip locally; in CI
(`AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1`) they fail, so that coverage never silently disappears.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import pg_cluster
from tests.real_agents import REQUIRE_ENV, required


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
