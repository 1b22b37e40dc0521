"""A Python client for agent-bridge: spawn the daemon (or connect to a running one over
WebSocket), open sessions, prompt agents, stream typed updates, answer permissions.

    import anyio
    from bridge.client import BridgeClient

    async def main() -> None:
        async with BridgeClient.spawn(agent="claude") as client:
            session = await client.create_session(cwd=".")
            answer = (await session.send("What does this repository do?")).text

    anyio.run(main)

See docs/client.md. The daemon never imports this package."""

from bridge.client.client import BridgeClient
from bridge.client.errors import (
    AgentFailed,
    AuthRequired,
    ClientError,
    ConnectFailed,
    ConnectionLost,
    InvalidParams,
    MethodNotFound,
    NotSupported,
    RequestError,
    SessionBusy,
    SessionNotFound,
    TurnFailed,
)
from bridge.client.mcp import McpServer
from bridge.client.permissions import InvalidReply, PermissionOption, PermissionRequest
from bridge.client.results import (
    AgentInfo,
    Artifact,
    Event,
    EventPage,
    Message,
    Metrics,
    PermissionDecision,
    SendResult,
    SessionInfo,
    SessionSummary,
    ShellResult,
    ToolCallState,
    Usage,
)
from bridge.client.session import InvalidValue, Session
from bridge.client.turn import Turn
from bridge.client.updates import (
    AgentMessageChunk,
    AgentThoughtChunk,
    AvailableCommandsUpdate,
    ConfigOption,
    ConfigOptionUpdate,
    CurrentModeUpdate,
    Plan,
    PlanEntry,
    SessionInfoUpdate,
    ToolCall,
    ToolCallUpdate,
    UnknownUpdate,
    Update,
    UsageUpdate,
    UserMessageChunk,
)

__all__ = [
    "AgentFailed",
    "AgentInfo",
    "AgentMessageChunk",
    "AgentThoughtChunk",
    "Artifact",
    "AuthRequired",
    "AvailableCommandsUpdate",
    "BridgeClient",
    "ClientError",
    "ConfigOption",
    "ConfigOptionUpdate",
    "ConnectFailed",
    "ConnectionLost",
    "CurrentModeUpdate",
    "Event",
    "EventPage",
    "InvalidParams",
    "InvalidReply",
    "InvalidValue",
    "McpServer",
    "Message",
    "MethodNotFound",
    "Metrics",
    "NotSupported",
    "PermissionDecision",
    "PermissionOption",
    "PermissionRequest",
    "Plan",
    "PlanEntry",
    "RequestError",
    "SendResult",
    "Session",
    "SessionBusy",
    "SessionInfo",
    "SessionInfoUpdate",
    "SessionNotFound",
    "SessionSummary",
    "ShellResult",
    "ToolCall",
    "ToolCallState",
    "ToolCallUpdate",
    "Turn",
    "TurnFailed",
    "UnknownUpdate",
    "Update",
    "Usage",
    "UsageUpdate",
    "UserMessageChunk",
]
