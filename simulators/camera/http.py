"""The little HTTP/1.1 an IP camera speaks: parse one GET request, build responses. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from simulators.camera.frames import SIZES

#: Longest request head accepted; browsers and OpenCV send a few hundred bytes.
MAX_HEAD = 8192
BOUNDARY = "hwdframe"
STREAM_PATH = "/stream.mjpg"
SNAPSHOT_PATH = "/snapshot.jpg"

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
}


@dataclass(frozen=True)
class Request:
    """A request the camera can serve: ``path`` is one of the two resources, ``size`` one of :data:`SIZES`."""

    path: str
    size: tuple[int, int]


@dataclass(frozen=True)
class Refusal:
    """A request the camera refuses with ``status`` and a plain-text ``reason``."""

    status: int
    reason: str


def parse_request(head: bytes) -> Request | Refusal:
    """Parse a request head (request line and headers, up to the blank line); total.

    :param head: the bytes received, at most :data:`MAX_HEAD`.
    :returns: what to serve, or why not.
    """
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return Refusal(400, "malformed request line")
    method, target = parts[0], parts[1].decode("ascii", errors="replace")
    if method != b"GET":
        return Refusal(405, "only GET is supported")
    url = urlsplit(target)
    if url.path not in (STREAM_PATH, SNAPSHOT_PATH):
        return Refusal(404, f"no such resource; try {STREAM_PATH} or {SNAPSHOT_PATH}")
    sizes = parse_qs(url.query, keep_blank_values=True).get("size", [])
    if not sizes:
        return Request(url.path, next(iter(SIZES.values())))
    if len(sizes) > 1 or sizes[0] not in SIZES:
        return Refusal(400, f"unsupported size {','.join(sizes)!r}; supported: {', '.join(SIZES)}")
    return Request(url.path, SIZES[sizes[0]])


def refusal_response(refusal: Refusal) -> bytes:
    """A complete response for ``refusal``, with a plain-text body; the connection closes after it."""
    body = (refusal.reason + "\n").encode()
    reason = _REASONS.get(refusal.status, "Error")
    return _head(f"{refusal.status} {reason}", "text/plain; charset=utf-8", len(body)) + body


def snapshot_response(jpeg: bytes) -> bytes:
    """A complete 200 response carrying one JPEG frame."""
    return _head("200 OK", "image/jpeg", len(jpeg)) + jpeg


def stream_head() -> bytes:
    """The head of an endless multipart/x-mixed-replace stream of JPEG parts."""
    return _head("200 OK", f"multipart/x-mixed-replace; boundary={BOUNDARY}", None)


def stream_part(jpeg: bytes) -> bytes:
    """One part of the stream: the boundary, the part's headers, the JPEG, and a line end."""
    headers = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return headers.encode() + jpeg + b"\r\n"


def _head(status: str, content_type: str, length: int | None) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        "Server: hwd-sim-camera",
        f"Content-Type: {content_type}",
        "Cache-Control: no-cache, no-store, must-revalidate",
        "Connection: close",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
