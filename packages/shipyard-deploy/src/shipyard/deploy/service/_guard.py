"""The service's front door: API-key auth, the request size limit and the media type.

A plain ASGI middleware (BentoML's ``add_asgi_middleware``), so it answers before BentoML reads
or parses a body: an oversized payload never reaches JSON parsing, and an unauthenticated one
never reaches the model. Health, readiness and metrics stay open for probes and scrapers. It
also serves the OpenAPI document as corrected by :mod:`shipyard.deploy.service._openapi`, which
describes, among the rest, the answers given here.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["OPEN_PATHS", "Guard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Probes, scrapers and the API description need no key (the description holds no data).
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json", "/"})
OPENAPI_PATH = "/docs.json"
Document = Callable[[dict[str, Any]], dict[str, Any]]
_OPEN_PREFIXES = ("/static_content/", "/assets/")  # the OpenAPI page's scripts and styles
_JSON_TYPES = frozenset({"", "application/json"})


class Guard:
    """ASGI middleware: 401 without the API key, 413 over the size limit, 415 for non-JSON."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        api_key: str | None,
        max_request_bytes: int,
        api_paths: frozenset[str],
        model_version: str,
        document: Document | None = None,
        sticky: tuple[bytes, str] | None = None,
    ) -> None:
        self.app = app
        self.document = document
        self.api_key = api_key.encode() if api_key else None
        self.max_bytes = max_request_bytes
        self.api_paths = api_paths
        self.version_header = (b"x-model-version", model_version.encode())
        # A header-sticky canary: (header, row field) the header's value is copied into.
        self.sticky = sticky

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        public = path in OPEN_PATHS or path.startswith(_OPEN_PREFIXES)
        if self.api_key is not None and not public and not self._authorized(headers):
            await _reply(
                send,
                401,
                "missing or wrong API key",
                "send the key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                extra=[(b"www-authenticate", b'Bearer realm="shipyard"')],
            )
            return
        if path in self.api_paths:
            media = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
            if media not in _JSON_TYPES:
                await _reply(send, 415, f"unsupported media type {media!r}", "send the rows as application/json")
                return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(send)
            return
        body = await self._read_body(receive) if scope.get("method") in ("POST", "PUT", "PATCH") else None
        if body is False:
            await self._too_large(send)
            return
        if self.sticky is not None and isinstance(body, bytes) and path in self.api_paths:
            body = _stick(body, headers.get(self.sticky[0]), self.sticky[1])
        send = self._tag(send)
        if path == OPENAPI_PATH and self.document is not None:
            send = _rewrite_json(send, self.document)
        await self.app(scope, _replay(body, receive) if isinstance(body, bytes) else receive, send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key")
        if given is None:
            scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
            given = token.strip() if scheme.lower() == b"bearer" else b""
        # Constant-time comparison: response timing must not reveal how much of a guess matched.
        return hmac.compare_digest(given, self.api_key or b"")

    async def _read_body(self, receive: Receive) -> bytes | bool:
        """The whole body, or False once it passes the limit (chunked uploads declare no length)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        await _reply(
            send,
            413,
            f"request body larger than {self.max_bytes} bytes",
            "send fewer rows per request, or raise deploy.service.max_request_bytes",
        )

    def _tag(self, send: Send) -> Send:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.version_header]
            await send(message)

        return tagged


def _rewrite_json(send: Send, change: Document) -> Send:
    """Hold a JSON response until its body is complete, then send ``change(body)`` instead (a
    response that is not a 200 JSON object goes out as it came)."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def rewrite(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        if start.get("status") == 200:
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            if isinstance(document, dict):
                body = json.dumps(change(document)).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return rewrite


def _stick(body: bytes, value: bytes | None, field: str) -> bytes:
    """The request with the sticky header's value in each row (the row model declares the
    field); a body that is not the expected JSON passes unchanged, for the API to reject."""
    if value is None:
        return body
    try:
        request = json.loads(body)
    except ValueError:
        return body
    rows = request.get("rows") if isinstance(request, dict) else None
    if not isinstance(rows, list):
        return body
    key = value.decode("latin-1")
    for row in rows:
        if isinstance(row, dict):
            row[field] = key
    return json.dumps(request).encode()


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send: Send, status: int, error: str, fix: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps({"error": error, "fix": fix}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": payload})
