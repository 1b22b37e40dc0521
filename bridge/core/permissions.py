"""Permission requests for a session: who is asked, and which answer the agent gets.

The agent asks once; the bridge asks every client allowed to answer (`permission_targets`:
the connected owner, plus the followers attached as controllers while the owner shares the
session) and the first *valid* answer wins — an option the agent offered, or `cancelled`.
The others' requests are withdrawn (`$/cancel_request`) and every other attached client is
told with `_bridge/session/permission_resolved` (spec/multi-client.md). The agent gets
exactly one answer. Whoever is asked must still be allowed to answer when the answer comes:
a client that lost the session meanwhile (a takeover, a detach) is not heard.

The inspector (a viewer holding the full token) may answer too (`answer_from_inspector`):
its answer wins like a client's, the clients asked are withdrawn and told who answered.

Fail closed: when nobody can answer (the owner gone, no controller) the request waits up to
the session's disconnect grace for someone to attach, then the agent is told `cancelled`.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import anyio

from bridge.core.links import ClientLink
from bridge.errors import RpcError
from bridge.store.base import Direction
from bridge.wire import jsonrpc
from bridge.wire.types import JsonObj


class Session(Protocol):
    """What asking a permission needs of a session (`bridge.core.session.Session`), which
    uses this module: named here, so that neither module imports the other's."""

    pending_permissions: list[JsonObj]
    disconnect_grace: float
    followers: list[ClientLink]
    inspector_answers: dict[int, JsonObj]

    @property
    def session_id(self) -> str: ...
    @property
    def owner(self) -> ClientLink | None: ...
    def permission_targets(self) -> list[ClientLink]: ...
    def links_changed(self) -> None: ...
    def changed(self) -> None: ...
    async def wait_links_changed(self) -> None: ...
    def record_event(self, event: JsonObj) -> None: ...
    def log(self, direction: Direction, frame: bytes) -> None: ...


log = logging.getLogger(__name__)

CANCELLED_OUTCOME: JsonObj = {"outcome": {"outcome": "cancelled"}}
RESOLVED = "_bridge/session/permission_resolved"


class InspectorLink:
    """The winner of an answer given in the inspector: not a connection, never asked."""

    link_id = "inspector"
    closed = False
    client_info: JsonObj = {"name": "agent-bridge inspector"}

    def send_frame(self, frame: bytes) -> None:
        return None

    async def request(self, method: str, params: Any) -> Any:
        raise RpcError(-32603, "the inspector is not a client")

    async def wait_writable(self) -> None:
        return None


INSPECTOR = InspectorLink()


def answer_from_inspector(session: Session, index: int, option_id: str) -> bool:
    """Answer the session's pending permission request number `index` with `option_id` (an
    offered option, or "cancelled" to refuse). False when there is no such request or
    option. The request's `ask_first` picks the answer up at once."""
    if not 0 <= index < len(session.pending_permissions):
        return False
    params = session.pending_permissions[index]
    outcome: JsonObj = (
        {"outcome": "cancelled"}
        if option_id == "cancelled"
        else {"outcome": "selected", "optionId": option_id}
    )
    result: JsonObj = {"outcome": outcome}
    if not valid_answer(result, params) or id(params) in session.inspector_answers:
        return False
    session.inspector_answers[id(params)] = result
    session.links_changed()
    return True


def valid_answer(result: Any, params: JsonObj) -> bool:
    """A `RequestPermissionResponse` naming one of the offered options, or `cancelled`."""
    outcome = result.get("outcome") if isinstance(result, dict) else None
    if not isinstance(outcome, dict):
        return False
    if outcome.get("outcome") == "cancelled":
        return True
    if outcome.get("outcome") != "selected":
        return False
    offered = {o.get("optionId") for o in params.get("options") or [] if isinstance(o, dict)}
    return isinstance(outcome.get("optionId"), str) and outcome["optionId"] in offered


async def ask_first(session: Session, method: str, params: JsonObj) -> JsonObj:
    session.pending_permissions.append(params)
    session.changed()
    try:
        return await _ask_first(session, method, params)
    finally:
        session.pending_permissions.remove(params)
        session.inspector_answers.pop(id(params), None)
        session.changed()


async def _ask_first(session: Session, method: str, params: JsonObj) -> JsonObj:
    asking: dict[str, anyio.CancelScope] = {}
    heard: set[str] = set()  # asked and done (answered badly, errored, gone, withdrawn)
    asked: dict[str, ClientLink] = {}
    won: list[tuple[ClientLink, JsonObj]] = []

    async with anyio.create_task_group() as tg:

        async def ask(link: ClientLink, scope: anyio.CancelScope) -> None:
            try:
                with scope:
                    result = await link.request(method, params)
                    eligible = any(t is link for t in session.permission_targets())
                    if not won and eligible and valid_answer(result, params):
                        won.append((link, result))
                        tg.cancel_scope.cancel()
                        return
                    if not valid_answer(result, params):
                        log.info("session %s: %s gave an invalid permission answer", session.session_id, link.link_id)
            except RpcError:
                pass  # refused, or its connection went away: not an answer
            finally:
                asking.pop(link.link_id, None)
                heard.add(link.link_id)
                session.links_changed()

        while True:
            answer = session.inspector_answers.get(id(params))
            if answer is not None and not won:
                won.append((INSPECTOR, answer))
                tg.cancel_scope.cancel()
                break
            targets = session.permission_targets()
            ids = {t.link_id for t in targets}
            for link_id, scope in list(asking.items()):
                if link_id not in ids:
                    scope.cancel()  # no longer allowed to answer: withdrawn
            for link in targets:
                if link.link_id not in asking and link.link_id not in heard:
                    scope = anyio.CancelScope()
                    asking[link.link_id] = scope
                    asked[link.link_id] = link
                    tg.start_soon(ask, link, scope)
            if asking:
                await session.wait_links_changed()
                continue
            owner = session.owner
            if owner is not None and not owner.closed:
                # The connected owner was asked and gave no valid answer: a refusal.
                return CANCELLED_OUTCOME
            # Nobody can answer: a client reattaching (or a controller joining a shared
            # session) within the grace period is asked; after it, the request is refused.
            with anyio.move_on_after(session.disconnect_grace) as timer:
                await session.wait_links_changed()
            if timer.cancelled_caught and not session.permission_targets():
                session.record_event({"type": "permission_denied", "reason": "no client attached"})
                return CANCELLED_OUTCOME

    winner, result = won[0]
    session.log("client", jsonrpc.encode({"method": method, "result": result}))
    _tell_the_others(session, params, winner, result, len(asked))
    return result


def _tell_the_others(
    session: Session, params: JsonObj, winner: ClientLink, result: JsonObj, asked: int
) -> None:
    tool_call = params.get("toolCall")
    tool_call_id = tool_call.get("toolCallId") if isinstance(tool_call, dict) else None
    outcome = result["outcome"]
    by: JsonObj = {"connection": winner.link_id}
    info = getattr(winner, "client_info", None)
    if isinstance(info, dict):
        by.update({k: info[k] for k in ("name", "version") if isinstance(info.get(k), str)})
    note: JsonObj = {"sessionId": session.session_id, "outcome": outcome, "resolvedBy": by}
    if isinstance(tool_call_id, str):
        note["toolCallId"] = tool_call_id
    if outcome.get("outcome") == "selected":
        note["chosenOptionId"] = outcome["optionId"]
    if asked > 1 or winner is INSPECTOR:
        session.record_event({"type": "permission_resolved", "resolvedBy": by, "asked": asked})
    frame = jsonrpc.notification_frame(RESOLVED, note)
    for link in (session.owner, *session.followers):
        if link is not None and link is not winner and not link.closed:
            link.send_frame(frame)
