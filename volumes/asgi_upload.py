"""Chunk PUTs of uploads reach their view with the body still on the wire, to be streamed to disk.

Django's ASGI handler reads every request body into a SpooledTemporaryFile (a temp file on disk
beyond 2.5 MiB) before the view runs, and the view then copies it again into the staging file:
for a multi-GiB upload that is most of the web process's work. For PUT .../uploads/<id>/chunks
only, this wrapper hands Django an empty body and puts a ``BodyStream`` in the scope under
BODY_STREAM_KEY instead. The request still goes through the whole of Django (sessions or an API
token (accounts.tokens.TokenMiddleware), login, CSRF, roles, ownership, state and range checks in the
view): nothing here authenticates, so a token works as a session does. Only a view that has accepted the
chunk pulls the body, which arrives in blocks of about BLOCK_BYTES through a bounded queue, so
the memory of a chunk is a few blocks whatever its size. Every other request passes untouched.
"""

from __future__ import annotations

import asyncio
import queue
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_STREAM_KEY = "virtstorage.body_stream"
BLOCK_BYTES = 1024 * 1024  # messages are gathered into blocks about this big (one pwritev each)
QUEUE_BLOCKS = 4  # blocks read ahead of the view at most
_CHUNK_PATH = re.compile(r"/volumes/uploads/[0-9a-f-]{36}/chunks")


class BodyAborted(Exception):
    """The client went away before the end of the body."""


class BodyStream:
    """The request body for a view running in a thread: blocks pulled from the connection on demand.

    Nothing is read from the connection until the view's first ``next_block()``, so a request the
    view refuses never has its body read.
    """

    def __init__(self, receive: Receive, loop: asyncio.AbstractEventLoop) -> None:
        self._receive = receive
        self._loop = loop
        self._blocks: queue.Queue[list[bytes] | BaseException | None] = queue.Queue()
        self._slots = asyncio.Semaphore(QUEUE_BLOCKS)  # taken by the pump, given back by the view
        self._pump: asyncio.Task | None = None
        self._ended = False
        self.disconnected = asyncio.Event()

    def next_block(self) -> list[bytes]:
        """The next pieces of the body (about BLOCK_BYTES in all); [] at its end. Call from a thread."""
        if self._ended:
            return []
        if self._pump is None:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        item = self._blocks.get()
        self._loop.call_soon_threadsafe(self._slots.release)
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        if item is None:
            self._ended = True
            return []
        return item

    async def _start(self) -> None:
        self._pump = asyncio.create_task(self._run())

    async def _run(self) -> None:
        pieces: list[bytes] = []
        size = 0
        more = True
        try:
            while more:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    self.disconnected.set()
                    await self._put(BodyAborted("the client went away before the end of the body"))
                    return
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if body:
                    pieces.append(body)
                    size += len(body)
                if size >= BLOCK_BYTES or (not more and pieces):
                    await self._put(pieces)
                    pieces, size = [], 0
            await self._put(None)
            # The body is over; what comes next on the connection is its end.
            if (await self._receive())["type"] == "http.disconnect":
                self.disconnected.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the view, which answers with it
            await self._put(exc)

    async def _put(self, item: list[bytes] | BaseException | None) -> None:
        await self._slots.acquire()  # waits while the view is QUEUE_BLOCKS behind
        self._blocks.put(item)

    async def close(self) -> None:
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            try:
                await self._pump
            except asyncio.CancelledError:
                pass


def stream_chunk_bodies(app: ASGIApp) -> ASGIApp:
    """Wrap the Django ASGI app: chunk PUTs get a BodyStream in their scope and an empty body."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["method"] == "PUT" and _CHUNK_PATH.fullmatch(scope["path"])):
            await app(scope, receive, send)
            return
        body = BodyStream(receive, asyncio.get_running_loop())
        handed_empty_body = False

        async def django_receive() -> Message:
            nonlocal handed_empty_body
            if not handed_empty_body:
                handed_empty_body = True
                return {"type": "http.request", "body": b"", "more_body": False}
            # Only the BodyStream reads the connection (two readers would split the body between
            # them); Django's disconnect listener hears of a disconnect from it.
            await body.disconnected.wait()
            return {"type": "http.disconnect"}

        try:
            await app({**scope, BODY_STREAM_KEY: body}, django_receive, send)
        finally:
            await body.close()

    return wrapped
