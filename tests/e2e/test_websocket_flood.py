"""Before authentication, a local peer without the token can exhaust neither the daemon's
descriptors nor its log: 2,000 idle connections (TCP open, no upgrade request) and a burst
of refused handshakes, while an authenticated client runs a turn."""

from __future__ import annotations

import contextlib
import re
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import psutil
import pytest
from anyio.abc import SocketStream

from bridge.transports.ws_limits import LOG_BURST, MAX_HANDSHAKES
from tests.e2e.ws_support import raw_handshake, upgrade_headers, ws_client, ws_daemon

pytestmark = pytest.mark.anyio

IDLE = 2000
# Ours: the idle sockets plus the test's own (pipes, the client, the fake model...).
FDS_NEEDED = IDLE + 500


def _enough_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= FDS_NEEDED:
        return
    if hard != resource.RLIM_INFINITY and hard < FDS_NEEDED:
        pytest.skip(f"the hard descriptor limit ({hard}) is below the {FDS_NEEDED} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (FDS_NEEDED, hard))


@contextlib.asynccontextmanager
async def idle_connections(port: int, count: int) -> AsyncIterator[list[SocketStream]]:
    """`count` loopback TCP connections that never send a byte; all closed on exit."""
    streams: list[SocketStream] = []
    try:
        for _ in range(count):
            streams.append(await anyio.connect_tcp("127.0.0.1", port))
        yield streams
    finally:
        for s in streams:
            with contextlib.suppress(Exception):
                await s.aclose()


async def test_idle_unauthenticated_connections_do_not_lock_out_a_client(tmp_path: Path) -> None:
    _enough_descriptors()
    async with ws_daemon(tmp_path) as d:
        daemon = psutil.Process(d.process.pid)
        # The usual default soft limit: without the cap, 2,000 idle sockets would exhaust it.
        daemon.rlimit(psutil.RLIMIT_NOFILE, (1024, daemon.rlimit(psutil.RLIMIT_NOFILE)[1]))
        baseline = daemon.num_fds()
        with anyio.fail_after(120):
            async with idle_connections(d.port, IDLE):
                # However many were opened, the daemon holds at most MAX_HANDSHAKES of them.
                assert daemon.num_fds() <= baseline + MAX_HANDSHAKES + 8
                async with ws_client(d) as c:
                    await c.acp.initialize()
                    sid = await c.acp.new_session(str(tmp_path))
                    result = await c.acp.prompt(sid, "echo still here")
                    assert result["stopReason"] == "end_turn"
                    assert "still here" in c.acp.text(sid)
        evictions = re.findall(rb"handshakes in progress: closed the oldest", bytes(d.stderr.data))
        assert 1 <= len(evictions) <= LOG_BURST


async def test_refused_handshakes_are_logged_at_a_bounded_rate(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        host = ("Host", f"127.0.0.1:{d.port}")
        with anyio.fail_after(120):
            for _ in range(300):
                status, _ = await raw_handshake(d.port, [host, ("Authorization", "Bearer wrong"), *upgrade_headers()])
                assert status == 401
            async with ws_client(d) as c:
                await c.acp.initialize()
        refused = re.findall(rb"handshake from \S+ refused", bytes(d.stderr.data))
        assert len(refused) == LOG_BURST
