"""The interceptor every call passes: the socket's allow-list, the caller's role, and the
translation of hwd errors (and bugs) into gRPC statuses, in one place for every service."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from hwd.errors import HwdError, MethodNotAllowed
from hwd.rpc.auth import ALLOWED, current_role
from hwd.rpc.errors import to_status

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the stubs are generic, the runtime classes are not
    Handler = grpc.RpcMethodHandler[Any, Any]
    _Interceptor = aio.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    _Interceptor = aio.ServerInterceptor


async def _abort(context: aio.ServicerContext[Any, Any], error: HwdError) -> None:
    status = to_status(error)
    await context.abort(status.code, status.details, status.trailing_metadata)


async def _fail(method: str, context: aio.ServicerContext[Any, Any], exc: Exception) -> None:
    """Ends the call with the status of ``exc``: its own for an HwdError, INTERNAL (logged) for a bug."""
    if isinstance(exc, aio.AbortError):  # already ended by the servicer
        raise exc
    if not isinstance(exc, HwdError):
        log.error("bug in %s", method, exc_info=exc)
        exc = HwdError(f"internal error in {method}; see the daemon log")
    await _abort(context, exc)


class EdgeInterceptor(_Interceptor):
    """Enforces one socket's allow-list and translates errors for every method behind it.

    :param role: the socket's role, a key of :data:`hwd.rpc.auth.ALLOWED`.
    """

    def __init__(self, role: str) -> None:
        self._role = role
        self._allowed = ALLOWED[role]

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        method = handler_call_details.method
        if method not in self._allowed:
            return _deny(method, self._role)
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None and not inspect.isasyncgenfunction(handler.unary_stream):
            # A stream served with context.write() (the health Watch): a coroutine, wrapped as one.
            return grpc.unary_stream_rpc_method_handler(
                self._unary(method, handler.unary_stream), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream), handler.request_deserializer, handler.response_serializer
            )
        return handler  # stream-request methods (reflection) only need the allow-list

    def _unary(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def call(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            current_role.set(self._role)
            try:
                return await behavior(request, context)
            except Exception as exc:
                await _fail(method, context, exc)

        return call

    def _stream(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def call(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            current_role.set(self._role)
            try:
                async for response in behavior(request, context):
                    yield response
            except Exception as exc:
                await _fail(method, context, exc)

        return call


def _deny(method: str, role: str) -> Handler:
    """A handler that refuses any call shape without reading the request."""

    async def refuse(_requests: Any, context: aio.ServicerContext[Any, Any]) -> None:
        await _abort(context, MethodNotAllowed(f"{method} is not allowed on {role}.sock"))

    return grpc.stream_stream_rpc_method_handler(refuse)
