"""An MJPEG-over-HTTP camera for tests, on a free loopback port, with knobs the simulated kiosk's camera
lacks: freeze every stream, vanish from the network and come back on the same port, count clients."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from hwd.drivers.camera import encode_image
from hwd.model import ImageFormat


def shaded_frame(width: int, height: int, shade: int) -> Any:
    """A BGR image of one green ``shade`` (0-255)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 1] = shade
    return image


class MjpegServer:
    """An IP camera stand-in: multipart JPEG at ~30 fps, native 640x480, ``?size=320x240`` variant.

    ``flowing`` cleared freezes every stream (connections stay open, no bytes move). ``requests``
    counts the streams asked for and ``clients`` those still open; :meth:`vanish` takes the camera
    off the network (connections refused) and :meth:`back` returns it on the same port.
    """

    SIZES = {"": (640, 480), "320x240": (320, 240)}

    def __init__(self) -> None:
        self.flowing = threading.Event()
        self.flowing.set()
        self.closing = threading.Event()
        self.changed = threading.Condition()
        self.requests = 0
        self.clients = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                size = outer.SIZES.get(
                    urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("size", [""])[0]
                )
                if size is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                outer.count(+1)
                try:
                    outer.stream(self, size)
                finally:
                    outer.count(-1)

        self.handler = Handler
        self._listen(0)

    def _listen(self, port: int) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), self.handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="mjpeg-server")

    def _stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()  # joins the handler threads
        self.thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def count(self, delta: int) -> None:
        with self.changed:
            self.requests += max(delta, 0)
            self.clients += delta
            self.changed.notify_all()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Waits (up to 10 s) until ``condition()`` holds, re-checked at each request or disconnection."""

        def wait() -> bool:
            with self.changed:
                return self.changed.wait_for(condition, timeout=10)

        assert await asyncio.to_thread(wait), "the MJPEG server never got there"

    def vanish(self) -> None:
        """Stops listening and drops the streams in progress."""
        self.closing.set()
        self._stop()
        self.closing.clear()

    def back(self) -> None:
        self._listen(self.port)
        self.thread.start()

    def stream(self, handler: http.server.BaseHTTPRequestHandler, size: tuple[int, int]) -> None:
        shade = 0
        while not self.closing.is_set():
            self.flowing.wait()
            if self.closing.is_set():
                return
            jpeg = encode_image(shaded_frame(*size, shade % 256), ImageFormat.JPEG, 80)
            part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n" % (len(jpeg), jpeg)
            try:
                handler.wfile.write(part)
            except OSError:  # the client went away
                return
            shade += 1
            self.closing.wait(1 / 30)

    @contextlib.contextmanager
    def running(self) -> Iterator[MjpegServer]:
        self.thread.start()
        try:
            yield self
        finally:
            self.closing.set()
            self.flowing.set()
            if self.thread.is_alive():
                self._stop()
