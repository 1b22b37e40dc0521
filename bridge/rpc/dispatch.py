"""Dispatch of a client's requests through `jsonrpcserver`, confined to this module.

The method table is explicit (`dict[str, Handler]`). Our handlers take the params object and
raise `RpcError`; whatever they raise is raised again to the caller untouched, so the one
place where exceptions become JSON-RPC errors stays the endpoint (`bridge.rpc.endpoint`) and
an error's message keeps its meaning (e.g. a handler's own -32601 for a method the config
turned off). Each request goes through jsonrpcserver's per-request dispatch
(`dispatch_request`) only: its entry point would also check the envelope with jsonschema
(~0.1 ms; envelopes are already checked by `bridge.wire.jsonrpc.classify`) and run the
request as a batch of one in `asyncio.gather` (a task per request).

jsonrpcserver is imported at the first dispatched request (or by the warm-up after the first
`initialize`, bridge/acp/server.py), not at module level: it pulls in
jsonschema, referencing and attrs (~75 ms here), which start-up does not need. The methods
named `direct` (the server's `initialize`, the first answer of every connection) never import
it: they are called here with the same argument rules jsonrpcserver applies (a non-empty
array is refused, an empty one or none is `{}`), so a client cannot tell the two paths apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bridge.errors import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError
from bridge.wire.jsonrpc import Request
from bridge.wire.types import JsonObj

Handler = Callable[[Any, JsonObj], Awaitable[Any]]


class _Raised:
    """Carries a handler's exception through jsonrpcserver's error result."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def _wrap(handler: Handler) -> Any:
    from jsonrpcserver import Error, Success

    # `context` is positional-only: a client's params may hold a key of that name too.
    async def method(context: Any, /, *args: Any, **params: Any) -> Any:
        if args:
            return Error(INVALID_PARAMS, "params must be an object, not an array")
        try:
            return Success(await handler(context, params))
        except Exception as exc:
            return Error(INTERNAL_ERROR, "", _Raised(exc))

    # jsonrpcserver checks every call with `inspect.signature(method).bind(...)`; computing
    # the signature is most of that (~30 µs a request here); a precomputed one is reused.
    method.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return method


_loaded: tuple[Any, Any, Any, Any] | None = None


def load_jsonrpcserver() -> tuple[Any, Any, Any, Any]:
    """What dispatch uses of jsonrpcserver, imported once (at the first dispatched request)."""
    global _loaded
    if _loaded is None:
        from jsonrpcserver.async_dispatcher import dispatch_request
        from jsonrpcserver.dispatcher import create_request
        from jsonrpcserver.sentinels import NODATA
        from oslash.either import Left

        _loaded = (dispatch_request, create_request, Left, NODATA)
    return _loaded


class Dispatcher:
    """Answers requests from an explicit method table; `context` is passed to handlers."""

    def __init__(self, table: Mapping[str, Handler], *, direct: frozenset[str] = frozenset()) -> None:
        self._table = dict(table)
        self._direct = direct & self._table.keys()
        # Wrapped on first dispatch: wrapping imports jsonrpcserver (see the module doc).
        self._methods: dict[str, Any] | None = None

    def has(self, method: str) -> bool:
        return method in self._table

    async def __call__(self, context: Any, req: Request) -> Any:
        if req.method in self._direct:
            return await self._call_direct(context, req)
        if req.method not in self._table:
            raise RpcError(METHOD_NOT_FOUND, f"unknown method: {req.method:.200}", {"method": req.method})
        if self._methods is None:
            self._methods = {name: _wrap(h) for name, h in self._table.items()}
        dispatch_request, create_request, left, nodata = load_jsonrpcserver()
        # jsonrpcserver's own dispatch of one request (method lookup, its argument check,
        # the call, its result check). Its entry point around it (`dispatch_to_response_pure`)
        # would deserialize and validate (identity here: the envelope is already checked) and
        # run the request in an `asyncio.gather` — a task and two event-loop turns per request
        # for a batch of one — then wrap the result in a response we unwrap again.
        _, result = await dispatch_request(self._methods, context, create_request(req.raw))
        if isinstance(result, left):
            err = result._error
            if isinstance(err.data, _Raised):
                raise err.data.exc
            raise RpcError(err.code, err.message, None if err.data is nodata else err.data)
        return result._value.result

    async def _call_direct(self, context: Any, req: Request) -> Any:
        # What `_wrap` and jsonrpcserver's extract_args/extract_kwargs do, without them.
        params = req.params
        if isinstance(params, list) and params:
            raise RpcError(INVALID_PARAMS, "params must be an object, not an array")
        return await self._table[req.method](context, dict(params) if isinstance(params, dict) else {})
