"""Permission requests from agents, and how they are answered: by a callback, by a policy,
or by the program (`reply()`) while it iterates a turn.

Policies grant at most what they name: `allow_always` falls back to `allow_once` when the
agent offers no "always" option, but `allow_once` never widens to `allow_always` — with no
"once" option it rejects. Anything that cannot be answered is rejected (fail closed)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import anyio

from bridge.client.errors import ClientError
from bridge.client.results import ToolCallState
from bridge.client.updates import AcpModel, ToolCallContent, ToolCallLocation
from bridge.wire.types import JsonObj


class Session(Protocol):
    """What a permission request reads of its session (`bridge.client.session.Session`)."""

    id: str

    @property
    def tool_calls(self) -> dict[str, ToolCallState]: ...


PermissionPolicy = Literal["allow_once", "allow_always", "reject", "ask"]
POLICIES: tuple[str, ...] = ("allow_once", "allow_always", "reject", "ask")
# A callback gets the request and returns a reply ("once", "always", "reject", an option
# kind or id) or None (= reject), or answers it itself with `request.reply()`.
PermissionCallback = Callable[["PermissionRequest"], "Awaitable[str | None] | str | None"]
Permissions = PermissionPolicy | PermissionCallback | None

_ids = itertools.count(1)

REPLY_ALIASES = {
    "once": "allow_once",
    "allow": "allow_once",
    "allow_once": "allow_once",
    "always": "allow_always",
    "allow_always": "allow_always",
    "reject": "reject_once",
    "deny": "reject_once",
    "reject_once": "reject_once",
    "reject_always": "reject_always",
}


class PermissionOption(AcpModel):
    option_id: str
    name: str
    kind: str


class PermissionToolCall(AcpModel):
    """The tool call a permission request is about (only `tool_call_id` is always set)."""

    tool_call_id: str
    title: str | None = None
    kind: str | None = None
    status: str | None = None
    content: list[ToolCallContent] | None = None
    locations: list[ToolCallLocation] | None = None
    raw_input: Any = None


class InvalidReply(ClientError, ValueError):
    """The reply names no option the agent offered."""


class PermissionRequest:
    """`session/request_permission` from the agent. Answer it once with `reply()` (or
    `Session.reply_to_permission(request.id, ...)`); `cancel()` answers "cancelled"."""

    def __init__(self, session: Session, params: JsonObj) -> None:
        self.id = f"perm-{next(_ids)}"
        self.session = session
        self.session_id = session.id
        self.raw = params
        raw_call = params.get("toolCall")
        tool_call: JsonObj = raw_call if isinstance(raw_call, dict) else {}
        try:
            self.tool_call = PermissionToolCall.model_validate(tool_call)
        except ValueError:
            self.tool_call = PermissionToolCall(tool_call_id=str(tool_call.get("toolCallId", "")))
        self.options = [
            PermissionOption.model_validate(o)
            for o in params.get("options") or []
            if isinstance(o, dict) and {"optionId", "name", "kind"} <= o.keys()
        ]
        self.outcome: JsonObj | None = None
        self.chosen: PermissionOption | None = None
        self.decided_by = ""
        self.message: str | None = None
        self._answered = anyio.Event()

    @property
    def title(self) -> str:
        """The tool call's title, as far as the session has seen it."""
        if self.tool_call.title:
            return self.tool_call.title
        known = self.session.tool_calls.get(self.tool_call.tool_call_id)
        return known.title if known is not None and known.title else self.tool_call.tool_call_id

    @property
    def kind(self) -> str | None:
        if self.tool_call.kind:
            return self.tool_call.kind
        known = self.session.tool_calls.get(self.tool_call.tool_call_id)
        return known.kind if known is not None else None

    @property
    def answered(self) -> bool:
        return self._answered.is_set()

    def reply(self, reply: str, message: str | None = None, *, decided_by: str = "reply") -> PermissionOption:
        """Answer with "once", "always", "reject" (or an option kind such as "reject_always",
        or an option id). Raises `InvalidReply` when the agent offered no such option."""
        option = select_for_reply(self.options, reply)
        self.decide(option, decided_by, message)
        return option

    def cancel(self, decided_by: str = "cancel") -> None:
        if not self.answered:
            self.outcome = {"outcome": "cancelled"}
            self.decided_by = decided_by
            self._answered.set()

    def decide(self, option: PermissionOption | None, decided_by: str, message: str | None = None) -> None:
        if self.answered:
            return
        if option is None:
            self.cancel(decided_by)
            return
        self.chosen = option
        self.outcome = {"outcome": "selected", "optionId": option.option_id}
        self.decided_by = decided_by
        self.message = message
        self._answered.set()

    async def wait(self) -> JsonObj:
        await self._answered.wait()
        assert self.outcome is not None
        return self.outcome

    def __repr__(self) -> str:
        kinds = ", ".join(o.kind for o in self.options)
        return f"<PermissionRequest {self.id} {self.title!r} [{kinds}]>"


def select_for_reply(options: list[PermissionOption], reply: str) -> PermissionOption:
    for option in options:
        if option.option_id == reply:
            return option
    kind = REPLY_ALIASES.get(reply.lower())
    if kind is None:
        raise InvalidReply(
            f"{reply!r} is not a reply: use once, always, reject, reject_always or an option id "
            f"({', '.join(o.option_id for o in options)})"
        )
    wanted = (
        [kind]
        if kind != "reject_once" or reply.lower() == "reject_once"
        else ["reject_once", "reject_always"]
    )
    for k in wanted:
        for option in options:
            if option.kind == k:
                return option
    raise InvalidReply(
        f"the agent offered no {kind} option (offered: {', '.join(o.kind for o in options) or 'none'})"
    )


def select_for_policy(options: list[PermissionOption], policy: str) -> PermissionOption | None:
    """The option a policy picks; None means answer "cancelled" (nothing fitting offered)."""
    order = {
        "allow_always": ["allow_always", "allow_once"],
        "allow_once": ["allow_once"],
    }.get(policy, [])
    for kind in [*order, "reject_once", "reject_always"]:
        for option in options:
            if option.kind == kind:
                return option
    return None


def check_permissions(permissions: Permissions) -> None:
    if permissions is not None and not callable(permissions) and permissions not in POLICIES:
        raise ValueError(
            f"permissions must be a callback or one of {', '.join(POLICIES)}, not {permissions!r}"
        )
