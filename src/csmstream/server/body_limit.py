"""A bound on HTTP request bodies, before any endpoint reads them: without it `await request.json()` reads and
parses whatever a client sends (a 300 MB body costs a gigabyte of memory and seconds of CPU before the 400).

A declared `Content-Length` over the limit is refused at once, unread; a chunked body is counted as it
arrives and refused as soon as it passes the limit. Either way the answer is 413 in the error shape of the
API the path belongs to (server/http_errors.py), and the connection is closed (the rest of the body is never
read). A body within the limit is read here (at most the limit, kept in memory) and replayed to the app;
after it, the app's `receive` is the server's again, so endpoints still see `http.disconnect`.

Voice uploads (`POST /v1/voices`) are exempt: they have their own, larger limit (`max_upload_bytes`,
server/voices_api.py), checked the same way while the multipart body streams in.
"""

from __future__ import annotations

from collections import deque

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csmstream.server.http_errors import error_for_path

UPLOAD_PATH = "/v1/voices"


def is_voice_upload(scope: Scope) -> bool:
    return scope.get("method") == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        assert max_bytes > 0, "the body limit must be positive"
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_voice_upload(scope):
            await self.app(scope, receive, send)
            return
        # 1. the declared size: refused before a byte of the body is read
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send, f"the request body is {int(declared)} bytes")
            return
        # 2. the body as it arrives (chunked, or a Content-Length that lies): counted, kept up to the limit
        messages: deque[Message] = deque()
        num_bytes = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client left: the app sees that as usual
                break
            num_bytes += len(message.get("body", b""))
            if num_bytes > self.max_bytes:
                await self._refuse(scope, send, f"the request body is over {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break

        # 3. the app reads the kept body, then the server's channel (disconnects) as before
        async def replay() -> Message:
            return messages.popleft() if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, what: str) -> None:
        message = f"{what}; at most {self.max_bytes} bytes are accepted"
        # the unread rest of the body must not be taken for the next request: close the connection
        response = error_for_path(scope["path"], 413, message, {"connection": "close"})

        async def no_receive() -> Message:  # a plain JSON response never reads the request
            return {"type": "http.disconnect"}

        await response(scope, no_receive, send)
