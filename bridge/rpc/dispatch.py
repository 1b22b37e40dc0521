"""Dispatch of a client's requests through `jsonrpcserver`, confined to this module.

The method table is explicit (`dict[str, Handler]`). jsonrpcserver resolves the method
(-32601 for unknown ones) and shapes the errors; our handlers take the params object and
raise `RpcError`. Its default validator checks every request with jsonschema (~0.1 ms);
envelopes are already checked by `bridge.wire.jsonrpc.classify`, so a no-op validator keeps
that cost off every request.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bridge.errors import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, find_rpc_error
from bridge.wire.jsonrpc import JsonObj, Request

log = logging.getLogger(__name__)

Handler = Callable[[Any, JsonObj], Awaitable[Any]]


def _wrap(name: str, handler: Handler) -> Any:
    # Imported here, not at module level: jsonrpcserver pulls in jsonschema, referencing and
    # attrs (~75 ms here), which the first answer (`initialize`) does not need.
    from jsonrpcserver import Error, Success

    async def method(context: Any, *args: Any, **params: Any) -> Any:
        if args:
            return Error(INVALID_PARAMS, "params must be an object, not an array")
        try:
            return Success(await handler(context, params))
        except RpcError as exc:
            return Error(exc.code, exc.message, exc.data)
        except Exception as exc:
            found = find_rpc_error(exc)
            if found is None:
                log.exception("%s failed", name)
                found = RpcError(INTERNAL_ERROR, f"internal error in the bridge: {exc!r}")
            return Error(found.code, found.message, found.data)

    # jsonrpcserver checks every call with `inspect.signature(method).bind(...)`; computing
    # the signature is most of that (~30 µs a request here); a precomputed one is reused.
    method.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return method


def _identity(obj: Any) -> Any:
    return obj


class Dispatcher:
    """Answers requests from an explicit method table; `context` is passed to handlers."""

    def __init__(self, table: Mapping[str, Handler]) -> None:
        self._table = dict(table)
        # Wrapped on first dispatch (see `_wrap`): building the table imports jsonrpcserver.
        self._methods: dict[str, Any] | None = None

    def has(self, method: str) -> bool:
        return method in self._table

    async def __call__(self, context: Any, req: Request) -> Any:
        # Lazy for start-up: jsonrpcserver and oslash load at the first dispatched request.
        from jsonrpcserver.async_dispatcher import dispatch_to_response_pure
        from jsonrpcserver.sentinels import NODATA
        from oslash.either import Left

        if self._methods is None:
            self._methods = {name: _wrap(name, h) for name, h in self._table.items()}
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
            # A handler's own -32601 (a method the config turned off) keeps its message.
            unknown = err.code == METHOD_NOT_FOUND and req.method not in self._methods
            message = f"unknown method: {req.method}" if unknown else err.message
            raise RpcError(err.code, message, None if err.data is NODATA else err.data)
        return outcome._value.result
