"""The exception tree and JSON-RPC error codes. Imports nothing internal.

Errors say who is at fault: the client (bad input), the agent (crashed, broke protocol)
or the bridge itself. Every error that reaches a client becomes an `RpcError` at the single
boundary in `bridge.rpc.endpoint`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REQUEST_CANCELLED = -32800
AUTH_REQUIRED = -32000
RESOURCE_NOT_FOUND = -32002
# Bridge-specific codes (JSON-RPC leaves -32000..-32099 to implementations; ACP uses -32000/-32002).
AGENT_EXITED = -32010
AGENT_START_FAILED = -32011
SESSION_BUSY = -32012
TURN_STALLED = -32013
STORE_ERROR = -32014
# The session is owned (leased) by another live daemon sharing the store.
SESSION_OWNED = -32015
# Connection-level authorization (spec/multi-client.md).
NOT_OWNER = -32020  # the session is driven by another connected client; take it over first
READ_ONLY = -32021  # an observer-token connection asked to act
# An agent broke JSON-RPC (unusable frames, answers to requests never sent).
AGENT_PROTOCOL_ERROR = -32016


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class RpcError(BridgeError):
    """An error that travels as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def invalid_params(message: str, field: str | None = None) -> RpcError:
    return RpcError(INVALID_PARAMS, message, {"field": field} if field else None)


def session_not_found(session_id: object) -> RpcError:
    return RpcError(RESOURCE_NOT_FOUND, f"unknown session: {session_id!r}", {"sessionId": session_id})


class AgentError(RpcError):
    """The agent failed: it exited, never started, or broke its protocol."""


class AgentExitedError(AgentError):
    def __init__(self, agent: str, returncode: int | None, stderr_tail: str) -> None:
        how = (
            f"exit code {returncode}"
            if returncode is not None and returncode >= 0
            else (f"signal {-returncode}" if returncode is not None else "unknown status")
        )
        msg = f"agent {agent!r} exited ({how})"
        if stderr_tail:
            last = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else ""
            msg += f": {last[:300]}"
        super().__init__(
            AGENT_EXITED, msg, {"agent": agent, "exitCode": returncode, "stderrTail": stderr_tail}
        )
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class AgentProtocolError(AgentError):
    """The agent broke JSON-RPC (a line over the size limit, an invalid message, an answer to
    a request never sent): what waited on it fails at once rather than at a stall timeout."""

    def __init__(self, agent: str, what: str) -> None:
        super().__init__(
            AGENT_PROTOCOL_ERROR, f"agent {agent!r} broke the protocol: it {what}", {"agent": agent, "kind": "protocol"}
        )


class AgentStartError(AgentError):
    def __init__(self, agent: str, reason: str, data: dict[str, Any] | None = None) -> None:
        payload: dict[str, Any] = {"agent": agent}
        if data:
            payload.update(data)
        super().__init__(AGENT_START_FAILED, f"agent {agent!r} could not start: {reason}", payload)


class StoreError(RpcError):
    """The durable store failed (corrupt, locked, disk full)."""

    def __init__(self, message: str) -> None:
        super().__init__(STORE_ERROR, message)


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, or every exception inside it when it is a group (task groups wrap what their
    body raises), depth first: the one way to look into exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def find_rpc_error(exc: BaseException) -> RpcError | None:
    """The RpcError inside `exc`, looking through exception groups."""
    return next((e for e in leaves(exc) if isinstance(e, RpcError)), None)
