"""Reject oversized request bodies before anything reads them (413).

Checked twice: the declared Content-Length up front, and the bytes actually received, so a
chunked upload without a length cannot slip past.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.errors import AppError


class BodyTooLarge(HTTPException):
    # An HTTPException because FastAPI turns any other exception raised while it reads
    # the body into a 400; this one it lets through to the error handler.
    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_message(limit))


def _too_large_message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes."


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.json_limit = settings.max_json_bytes
        self.multipart_limit = settings.max_multipart_bytes

    def _limit_for(self, scope: Scope) -> int:
        content_type = _header(scope, b"content-type") or ""
        # File uploads get their own (larger) budget; the per-file limit is checked by
        # the upload's service. Everything else - JSON, forms - is small.
        return self.multipart_limit if content_type.startswith("multipart/") else self.json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(scope, receive, send, limit)
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _reject(scope, receive, send, limit)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _reject(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    from starlette.requests import Request

    from app.errors import render_error

    error = AppError("payload_too_large", _too_large_message(limit), 413, limit=limit)
    response = render_error(Request(scope, receive), error)
    await response(scope, receive, send)
