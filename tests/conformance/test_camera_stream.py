"""The simulated camera's MJPEG stream as two independent clients see it, through a real simulator process.

OpenCV's ``VideoCapture`` (its FFmpeg backend demuxes the multipart stream itself) and the
standard library's ``http.client`` (the multipart parts split here by hand, the JPEGs decoded by
Pillow) share no code with the simulator; both must see the same frames.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from http.client import HTTPConnection, HTTPResponse
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, simulator_fixtures

pytestmark = pytest.mark.conformance

TIMEOUT_MS = 10_000
MAX_PART = 4 << 20  # a 1080p JPEG is a few hundred kB
Frame = npt.NDArray[np.uint8]

kiosk, control = simulator_fixtures("camera-conformance")


def stream_url(kiosk: dict[str, Any], query: str = "") -> str:
    url: str = kiosk["devices"]["camera"]["endpoint"]
    return url + query


def opencv_frame(url: str) -> Frame:
    """One frame through OpenCV's own network stack and demuxer."""
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, TIMEOUT_MS]
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    try:
        assert capture.isOpened(), f"OpenCV could not open {url}"
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok
    return np.asarray(frame, np.uint8)


@pytest.fixture
def http_stream(kiosk: dict[str, Any]) -> Iterator[tuple[str, HTTPConnection]]:
    """A plain http.client connection to the camera and the camera's path."""
    url = urlsplit(stream_url(kiosk))
    assert url.hostname is not None
    connection = HTTPConnection(url.hostname, url.port, timeout=RPC_TIMEOUT_S)
    yield url.path, connection
    connection.close()


def open_stream(connection: HTTPConnection, target: str) -> tuple[HTTPResponse, bytes]:
    """GET the stream; the response and its multipart boundary, checked against the content type."""
    connection.request("GET", target)
    response = connection.getresponse()
    assert response.status == 200
    kind, _, parameter = response.getheader("Content-Type", "").partition(";")
    assert kind == "multipart/x-mixed-replace"
    name, _, boundary = parameter.strip().partition("=")
    assert name == "boundary"
    assert boundary
    return response, boundary.strip('"').encode()


def next_part(response: HTTPResponse, boundary: bytes) -> Image.Image:
    """Split the next part off the stream by hand and decode it with Pillow."""
    line = response.readline(256)
    while line in (b"\r\n", b"\n"):  # the line end closing the previous part
        line = response.readline(256)
    assert line.rstrip(b"\r\n") == b"--" + boundary
    headers: dict[str, str] = {}
    while (line := response.readline(1024).rstrip(b"\r\n")) != b"":
        name, _, value = line.decode("ascii").partition(":")
        headers[name.strip().lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    length = int(headers["content-length"])
    assert 0 < length <= MAX_PART
    jpeg = response.read(length)
    assert len(jpeg) == length
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    image.load()
    return image


def bgr(image: Image.Image) -> Frame:
    return np.asarray(image.convert("RGB"), np.uint8)[:, :, ::-1]


@pytest.mark.parametrize(("query", "size"), [("", (1920, 1080)), ("?size=1280x720", (1280, 720))])
def test_opencv_and_http_client_agree_on_the_frames(
    kiosk: dict[str, Any],
    control: simulator_pb2_grpc.SimulatorStub,
    http_stream: tuple[str, HTTPConnection],
    query: str,
    size: tuple[int, int],
) -> None:
    path, connection = http_stream
    response, boundary = open_stream(connection, path + query)
    parts = [next_part(response, boundary) for _ in range(3)]
    assert {part.size for part in parts} == {size}
    seen_by_opencv = opencv_frame(stream_url(kiosk, query))
    assert seen_by_opencv.shape == (size[1], size[0], 3)
    # The same still scene, decoded by two unrelated JPEG decoders: the same picture.
    assert np.abs(seen_by_opencv.astype(np.int16) - bgr(parts[-1])).mean() < 2.0


def test_a_placed_phone_shows_where_it_lies(
    kiosk: dict[str, Any], control: simulator_pb2_grpc.SimulatorStub, http_stream: tuple[str, HTTPConnection]
) -> None:
    url = stream_url(kiosk, "?size=1280x720")
    empty = opencv_frame(url)
    params = {"profile": "iphone-13", "x": "-100", "y": "0", "angle": "0", "screen": "on", "glare": "0", "noise": "0"}
    request = simulator_pb2.FaultRequest(device="camera", fault="place", params=params)
    control.Fault(request, timeout=RPC_TIMEOUT_S)
    placed = opencv_frame(url)
    path, connection = http_stream
    response, boundary = open_stream(connection, path + "?size=1280x720")
    from_http = bgr(next_part(response, boundary))
    # At 1280x720 a pixel is 0.3 mm of tray: x = -100 mm is 333 pixels left of the centre.
    phone = (slice(360 - 150, 360 + 150), slice(640 - 333 - 60, 640 - 333 + 60))
    elsewhere = (slice(200, 520), slice(800, 1200))
    for frame in (placed, from_http):
        assert np.abs(frame[phone].astype(np.int16) - empty[phone]).mean() > 40
        assert np.abs(frame[elsewhere].astype(np.int16) - empty[elsewhere]).mean() < 3
