"""The Compute batch endpoint: ``POST /batch/compute/v1`` with a ``multipart/mixed`` body.

gcloud sends one when a command names several resources (``gcloud compute addresses create a b``,
``... delete a b``); google-api-python-client's ``new_batch_http_request()`` does the same. Each
part is an embedded HTTP request (``Content-Type: application/http``); each is served like a
direct call (routing, request log, IAM, faults, conformance) and answered in a part of a
``multipart/mixed`` response whose ``Content-ID`` is ``<response-ID>`` for the request's ``<ID>``,
the format Google documents for its batch endpoints and that apitools and googleapiclient parse.
"""

from __future__ import annotations

import email.message
import email.parser
import http
import json
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from runnet.emulator.gcp.errors import GCPError
from runnet.emulator.gcp.wire import Incoming, split_target

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import GCPEmulator

BATCH_PATHS = frozenset({"/batch/compute/v1"})
"""The discovery document's ``batchPath`` for Compute v1 (a test checks it against the document)."""
MAX_PARTS = 1000
"""Google's documented limit of calls in one batch request."""


def is_batch(incoming: Incoming) -> bool:
    return incoming.method == "POST" and incoming.path in BATCH_PATHS


async def serve(emu: GCPEmulator, incoming: Incoming) -> web.Response:
    """Serve every part in order; the batch itself is 200 even when parts fail, as on Google."""
    try:
        parts = parse(incoming)
    except GCPError as exc:
        return web.json_response(exc.compute_body(), status=exc.code)
    boundary = f"batch_{secrets.token_urlsafe(12)}"
    chunks = []
    for content_id, inner in parts:
        status, body = await emu.serve(inner)
        chunks.append(f"--{boundary}\r\n{render_part(content_id, status, body)}\r\n")
    payload = "".join(chunks) + f"--{boundary}--\r\n"
    return web.Response(
        body=payload.encode(),
        status=200,
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
    )


def parse(incoming: Incoming) -> list[tuple[str, Incoming]]:
    """The batch's parts as (Content-ID, request); a malformed batch is one 400 for all of them."""
    content_type = incoming.headers.get("Content-Type") or incoming.headers.get("content-type") or ""
    if not content_type.lower().startswith("multipart/mixed"):
        raise _bad(f"Content-Type must be multipart/mixed, got '{content_type}'")
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser().parsebytes(head + incoming.raw)
    if not message.is_multipart():
        raise _bad("the body is not a multipart/mixed message with a boundary")
    parts = [p for p in message.get_payload() if isinstance(p, email.message.Message)]
    if not parts:
        raise _bad("the batch has no parts")
    if len(parts) > MAX_PARTS:
        raise _bad(f"a batch may hold at most {MAX_PARTS} calls, this one has {len(parts)}")
    return [(str(part.get("Content-ID", "")), _request(part, incoming)) for part in parts]


def _request(part: email.message.Message, outer: Incoming) -> Incoming:
    """An ``application/http`` part: request line, headers, blank line, body."""
    if part.get_content_type() != "application/http":
        raise _bad(f"each part must be application/http, got '{part.get_content_type()}'")
    text = part.get_payload()
    if not isinstance(text, str):
        raise _bad("a part holds one HTTP request")
    request_line, _, rest = text.lstrip("\r\n").partition("\n")
    words = request_line.strip().split(" ")
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise _bad(f"invalid request line '{request_line.strip()}'")
    inner = email.parser.Parser().parsestr(rest)
    path, query, host = split_target(words[1])
    body = inner.get_payload()
    raw = body.strip().encode() if isinstance(body, str) else b""
    headers = {k: str(v) for k, v in inner.items()}
    if not any(k.lower() == "authorization" for k in headers):
        # A part without credentials of its own is made with the batch request's (Google's rule).
        headers.update({k: v for k, v in outer.headers.items() if k.lower() == "authorization"})
    return Incoming(
        method=words[0].upper(),
        path=path,
        query=query,
        host=host or str(inner.get("Host") or outer.host),
        raw=raw,
        headers=headers,
        batched=True,
    )


def render_part(content_id: str, status: int, body: Any) -> str:
    """One response part: the echoed Content-ID, then the embedded HTTP response."""
    headers = ["Content-Type: application/http"]
    if content_id.startswith("<") and content_id.endswith(">"):
        headers.append(f"Content-ID: <response-{content_id[1:-1]}>")
    payload = json.dumps(body, separators=(",", ":")) if body is not None else ""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    response = [
        f"HTTP/1.1 {status} {phrase}",
        "Content-Type: application/json; charset=UTF-8",
        f"Content-Length: {len(payload.encode())}",
    ]
    return "\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(response) + "\r\n\r\n" + payload


def _bad(detail: str) -> GCPError:
    return GCPError(400, "badRequest", f"Failed to parse batch request, error: {detail}.")
