"""The crash-restart limit: how often a session's agent may crash and be restarted, and how
long each restart waits (exponential backoff). Restarts the bridge itself causes (forced
cancel, stall) do not count; the manager (bridge/core/manager.py) calls this only after a crash.
"""

from __future__ import annotations

import anyio

from bridge.core.session import Session
from bridge.errors import AgentError

# At most MAX_RESTARTS crash restarts within RESTART_WINDOW seconds.
MAX_RESTARTS = 3
RESTART_WINDOW = 60.0

__all__ = ["MAX_RESTARTS", "RESTART_WINDOW", "crash_backoff"]


async def crash_backoff(session: Session, crashed: AgentError) -> None:
    """Count this crash restart, refuse it past the limit (`crashed` the last failure), and
    wait the backoff before it."""
    now = anyio.current_time()
    recent = [t for t in session.restart_times if now - t < RESTART_WINDOW]
    session.restart_times = recent
    if len(recent) >= MAX_RESTARTS:
        raise _restart_limit_error(session, crashed, recent[0] + RESTART_WINDOW - now)
    session.restart_times.append(now)
    await anyio.sleep(min(2.0, 0.25 * (2 ** (len(recent)))))


def _restart_limit_error(session: Session, last: AgentError, retry_in: float) -> AgentError:
    data = last.data if isinstance(last.data, dict) else {}
    return AgentError(
        last.code,
        f"agent {session.spec.name!r} failed {MAX_RESTARTS} times within {RESTART_WINDOW:g} s; restart limit "
        f"reached, next attempt allowed in {max(retry_in, 0):.0f} s. Last failure: {last.message}",
        {
            **data,
            "agent": session.spec.name,
            "restartLimit": MAX_RESTARTS,
            "windowSeconds": RESTART_WINDOW,
            "retryAfterSeconds": round(max(retry_in, 0), 1),
        },
    )
