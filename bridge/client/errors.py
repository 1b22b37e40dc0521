"""What the client raises. Every error the daemon answers becomes a `RequestError` (or one of
its subclasses, chosen by code); a lost connection is `ConnectionLost`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.errors import (
    AGENT_EXITED,
    AGENT_START_FAILED,
    AUTH_REQUIRED,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    RESOURCE_NOT_FOUND,
    SESSION_BUSY,
    RpcError,
)

if TYPE_CHECKING:
    from bridge.client.results import SendResult


class ClientError(Exception):
    """Base of everything `bridge.client` raises on purpose."""


class RequestError(ClientError):
    """The daemon answered a request with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class SessionNotFound(RequestError):
    """-32002: unknown or deleted session."""


class InvalidParams(RequestError):
    """-32602: the daemon rejected a parameter (`data["field"]` names it)."""


class MethodNotFound(RequestError):
    """-32601: the daemon (or the agent behind it) does not have this method."""


class AuthRequired(RequestError):
    """-32000: the agent needs a login first."""


class AgentFailed(RequestError):
    """-32010 / -32011: the agent exited or could not start (`data` has exitCode, stderrTail)."""


class SessionBusy(RequestError):
    """-32012: the session is running a prompt."""


class TurnFailed(ClientError):
    """A prompt ended with an error; `partial` holds what the agent produced before it."""

    def __init__(self, error: RequestError | ClientError, partial: SendResult) -> None:
        super().__init__(str(error))
        self.error = error
        self.partial = partial


class ConnectionLost(ClientError):
    """The daemon went away (exited, or the socket closed). For a spawned daemon
    `exit_code` and `stderr_tail` say why."""

    def __init__(self, message: str, *, exit_code: int | None = None, stderr_tail: str = "") -> None:
        detail = message
        if exit_code is not None:
            detail += f" (daemon exit code {exit_code})"
        last = stderr_tail.strip().splitlines()[-1:] if stderr_tail.strip() else []
        if last:
            detail += f": {last[0][:300]}"
        super().__init__(detail)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class ConnectFailed(ClientError):
    """The daemon could not be reached, or refused the connection (bad token, Origin...)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotSupported(ClientError):
    """The agent (or ACP) offers no way to do this; the message says what is missing."""


_BY_CODE: dict[int, type[RequestError]] = {
    RESOURCE_NOT_FOUND: SessionNotFound,
    INVALID_PARAMS: InvalidParams,
    METHOD_NOT_FOUND: MethodNotFound,
    AUTH_REQUIRED: AuthRequired,
    AGENT_EXITED: AgentFailed,
    AGENT_START_FAILED: AgentFailed,
    SESSION_BUSY: SessionBusy,
}


def from_rpc(method: str, exc: RpcError) -> RequestError:
    cls = _BY_CODE.get(exc.code, RequestError)
    return cls(method, exc.code, exc.message, exc.data)
