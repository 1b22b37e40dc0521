"""What a user is told when an agent fails its handshake, the same words for every adapter.

The diagnostics rules (`bridge/diagnostics/rules.py`) recognise these messages, and
`kind: handshake_timeout` in the error's data, to say what to do next; one place to word
them keeps every agent's failure classified alike.
"""

from __future__ import annotations

from bridge.errors import AgentStartError

# How much of the agent's stderr goes into the message (the whole tail stays in `data`).
MESSAGE_TAIL = 500


def timed_out(agent: str, step: str, seconds: float, stderr_tail: str, hint: str = "") -> AgentStartError:
    """The agent did not answer `step` (e.g. "initialize") within `seconds`."""
    reason = f"it did not answer {step} within {seconds:g} s"
    return AgentStartError(
        agent,
        f"{reason}; {hint}" if hint else reason,
        {"stderrTail": stderr_tail, "kind": "handshake_timeout"},
    )


def exited(agent: str, returncode: int | None, stderr_tail: str) -> AgentStartError:
    """The agent's process ended before its handshake did."""
    return AgentStartError(
        agent,
        f"it exited during the handshake (exit code {returncode}): {stderr_tail.strip()[-MESSAGE_TAIL:]}",
        {"exitCode": returncode, "stderrTail": stderr_tail},
    )
