"""Dispatch of a client's requests through `jsonrpcserver`, confined to this module.

The method table is explicit (`dict[str, Handler]`). Our handlers take the params object and
raise `RpcError`; whatever they raise is raised again to the caller untouched, so the one
place where exceptions become JSON-RPC errors stays the endpoint (`bridge.rpc.endpoint`) and
an error's message keeps its meaning (e.g. a handler's own -32601 for a method the config
turned off). Its default validator checks every request with jsonschema (~0.1 ms); envelopes
are already checked by `bridge.wire.jsonrpc.classify`, so a no-op validator keeps that cost
off every request.

jsonrpcserver is imported at the first dispatched request, not at module level: it pulls in
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


def _identity(obj: Any) -> Any:
    return obj


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
        from jsonrpcserver.async_dispatcher import dispatch_to_response_pure
        from jsonrpcserver.sentinels import NODATA
        from oslash.either import Left

        if req.method not in self._table:
            raise RpcError(METHOD_NOT_FOUND, f"unknown method: {req.method:.200}", {"method": req.method})
        if self._methods is None:
            self._methods = {name: _wrap(h) for name, h in self._table.items()}
        response = await dispatch_to_response_pure(
            deserializer=_identity,
            validator=_identity,
            methods=self._methods,
            context=context,
            post_process=_identity,
            request=req.raw,  # type: ignore[arg-type]
        )
        outcome: Any = response
        if isinstance(outcome, Left):
            err = outcome._error
            if isinstance(err.data, _Raised):
                raise err.data.exc
            raise RpcError(err.code, err.message, None if err.data is NODATA else err.data)
        return outcome._value.result

    async def _call_direct(self, context: Any, req: Request) -> Any:
        # What `_wrap` and jsonrpcserver's extract_args/extract_kwargs do, without them.
        params = req.params
        if isinstance(params, list) and params:
            raise RpcError(INVALID_PARAMS, "params must be an object, not an array")
        return await self._table[req.method](context, dict(params) if isinstance(params, dict) else {})
