"""The config file's schema as pydantic models: what `bridge.config.load_config` validates a
file against when its quick check (`bridge.config._plain`) cannot vouch for it, and what
gives a bad file its one-line error. Imported only then (issue 17: pydantic is ~100 ms of
start-up here); the daemon itself works on the dataclasses of `bridge.config` and
`bridge.mcp.config`, which have the same fields and defaults (tests/test_config_fast.py
keeps the two in step)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from bridge import timeouts


class McpServerModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str | None = None
    args: list[str] | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None
    transport: str | None = None
    enabled: bool = True


class AgentModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol: str | None = None
    command: str | None = None
    args: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    stall_timeout: float | None = Field(default=None, gt=0)
    allow_shell: StrictBool | None = None
    client_tools: StrictBool = True
    share_process: StrictBool = True
    mcp_servers: dict[str, McpServerModel] = Field(default_factory=dict)


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default_agent: str | None = None
    agents: dict[str, AgentModel] = Field(default_factory=dict)
    stall_timeout: float = Field(default=timeouts.STALL_TIMEOUT, gt=0)
    cancel_grace: float = Field(default=timeouts.CANCEL_GRACE, gt=0)
    disconnect_grace: float = Field(default=timeouts.DISCONNECT_GRACE, ge=0)
    handshake_timeout: float = Field(default=timeouts.HANDSHAKE_TIMEOUT, gt=0)
    trace: str | None = None
    log_level: str | None = None
    login_shell_env: bool = True
    env: dict[str, str] = Field(default_factory=dict)
    path_prepend: list[str] = Field(default_factory=list)
    log_keep_days: int = Field(default=7, ge=1)
    allow_shell: StrictBool = False
    mcp_stdio: Literal["allow", "deny"] = "allow"
    mcp_servers: dict[str, McpServerModel] = Field(default_factory=dict)
    lease_timeout: float = Field(default=timeouts.LEASE_TIMEOUT, gt=0)
    store: str | None = None
