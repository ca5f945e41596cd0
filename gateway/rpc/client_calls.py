"""Calls the server makes to one client (``ctx.call_client``), waiting for its answers.

Each call is a JSON-RPC request with an id of the server's own namespace (``"s1"``, ``"s2"``...),
answered by the client with a JSON-RPC response. At most ``limit`` wait at a time, each for at
most its timeout; all of them fail when the connection closes. A client handler's error is
logged here, with the stack the client sent, and raised in the server's handler.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from pushgate.core.errors import RpcCode
from pushgate.core.rpc import ClientAnswer, ClientFailure, encode_server_call, server_call_id

log = logging.getLogger(__name__)


class ClientCallError(Exception):
    """A call to the client failed: it answered an error, did not answer in time, or left.

    ``failure`` is the client's error answer, when there was one.
    """

    def __init__(self, message: str, failure: ClientFailure | None = None) -> None:
        super().__init__(message)
        self.failure = failure


class ClientCalls:
    """The server's calls waiting for one client's answers; bounded in number and in time."""

    __slots__ = ("_client", "_closed", "_ids", "_limit", "_push", "_waiting")

    def __init__(self, push: Callable[[str], None], *, limit: int, client: str) -> None:
        self._push = push
        self._limit = limit
        self._client = client
        self._ids = itertools.count(1)
        self._waiting: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._closed = False

    async def call(self, method: str, params: Any, timeout: float) -> Any:  # noqa: ASYNC109
        """Send the call and return the client's result; ClientCallError if there is none."""
        if self._closed:
            raise ClientCallError(f"cannot call {method}: the connection is closed")
        if len(self._waiting) >= self._limit:
            raise ClientCallError(f"cannot call {method}: {self._limit} calls already wait")
        call_id = server_call_id(next(self._ids))
        frame = encode_server_call(call_id, method, params)  # before registering: may raise
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = (method, answer)
        try:
            self._push(frame)
            async with asyncio.timeout(timeout):
                return await answer
        except TimeoutError:
            message = f"the client did not answer {method} within {timeout:g} s"
            raise ClientCallError(message) from None
        finally:
            self._waiting.pop(call_id, None)

    def settle(self, answer: ClientAnswer) -> None:
        """Complete the call ``answer`` answers; an answer to no waiting call is dropped."""
        waiting = self._waiting.pop(answer.id, None) if isinstance(answer.id, str) else None
        if waiting is None:
            log.debug("dropped an answer to no waiting call: %r", answer.id)
            return
        method, future = waiting
        if future.done():
            return
        failure = answer.error
        if failure is None:
            future.set_result(answer.result)
            return
        extra = {"client": self._client, "method": method, "code": failure.code}
        if failure.code == RpcCode.RPC_UNKNOWN_METHOD:
            message = f"the client has no handler for {method}"
            log.warning("%s", message, extra=extra)
        else:
            message = f"client handler {method} failed: {failure.type}: {failure.message}"
            log.warning("%s\n%s", message, failure.stack or "(no stack)", extra=extra)
        future.set_exception(ClientCallError(message, failure))

    def close(self) -> None:
        """The connection is over: every waiting call fails, and no new one is sent."""
        self._closed = True
        waiting, self._waiting = self._waiting, {}
        for method, future in waiting.values():
            if not future.done():
                future.set_exception(ClientCallError(f"the connection closed before {method}"))
