"""The simulated inspection camera: an IP camera serving the chamber as MJPEG over HTTP.

``GET /stream.mjpg`` is an endless multipart/x-mixed-replace stream of JPEG frames at up to
:data:`DEFAULT_FPS`; ``GET /snapshot.jpg`` is one frame. Both take ``?size=1920x1080`` (the
default), ``1280x720`` or ``640x480``; another size gives 400. Each client is paced on its own: a
client that reads slowly gets the newest frame when it is ready for one, so frames are skipped and
nothing piles up. On the ``record`` action the camera also writes a short clip of a kiosk session,
``DIR/camera/clip-NNNN.avi`` (MJPG in AVI), for a daemon pointed at a video file instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from pathlib import Path

from simulators.camera import actions
from simulators.camera.frames import SIZES, FrameCache
from simulators.camera.http import (
    MAX_HEAD,
    SNAPSHOT_PATH,
    Refusal,
    Request,
    parse_request,
    refusal_response,
    snapshot_response,
    stream_head,
    stream_part,
)
from simulators.camera.scene import PhoneLook, Scene, load_looks
from simulators.camera.video import DEFAULT_FPS as DEFAULT_CLIP_FPS
from simulators.camera.video import demo_scenes, write_video
from simulators.device import check_params, int_param

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
CLIPS = "camera"
_CLIP_NAME = re.compile(r"clip-(\d+)\.avi")
#: A client must send its request head within this time, and take each frame within WRITE_DEADLINE_S.
HEAD_DEADLINE_S = 10.0
WRITE_DEADLINE_S = 10.0
LINK_FAULTS = ("vanish", "return", "freeze", "thaw")
RECORD_PARAMS = ("size", "seed", "fps")


class CameraSim:
    """An MJPEG-over-HTTP camera looking at the inspection chamber.

    Faults and actions: ``place`` (params ``profile``, ``cracked`` 0/1, ``screen`` on/off,
    ``angle`` degrees, ``x``/``y`` mm from the tray centre, ``glare`` 0..1, ``noise`` grey levels,
    ``seed``; what is left out is drawn at random from ``seed``, which defaults to the number of
    placements since the last reset), ``remove``, ``crack``, ``screen-on``, ``screen-off``,
    ``lights-off``, ``lights-on``, ``vanish`` (the listener and every connection close:
    connections are refused), ``return`` (listening again on the same port), ``freeze``
    (connections stay open but nothing is sent, not even response headers), ``thaw``, and
    ``record`` (params ``size``, default 1920x1080, ``seed``, default 1, and ``fps``, default 10:
    writes a 40-frame clip of a kiosk session, see :func:`demo_scenes`, and lists it in
    :attr:`artifacts`).
    """

    name = "camera"
    kind = "mjpeg-camera"

    def __init__(self, directory: Path, *, fps: float = DEFAULT_FPS) -> None:
        """:param directory: the simulator's ``--dir``; recorded clips go to ``DIR/camera``.

        :param fps: the most frames per second any one client is sent.
        """
        self._dir = Path(os.path.abspath(directory)) / CLIPS
        self._period = 1.0 / fps
        self._cache = FrameCache(Scene())
        self._looks: dict[str, PhoneLook] = {}
        self._server: asyncio.Server | None = None
        self._port = 0
        self._clients: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._placements = 0
        self._artifacts: list[Path] = []
        self._parts_sent = 0

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT/stream.mjpg``."""
        return f"http://127.0.0.1:{self._port}/stream.mjpg"

    @property
    def snapshot_url(self) -> str:
        """``http://127.0.0.1:PORT/snapshot.jpg``."""
        return f"http://127.0.0.1:{self._port}{SNAPSHOT_PATH}"

    @property
    def scene(self) -> Scene:
        """What the camera shows now."""
        return self._cache.scene

    @property
    def encodings(self) -> int:
        """How many times a scene was rendered and encoded at some size (once per scene and size)."""
        return self._cache.encodings

    @property
    def parts_sent(self) -> int:
        """How many stream frames were handed to clients' connections since start, all clients together."""
        return self._parts_sent

    @property
    def state(self) -> str:
        """E.g. ``empty tray`` or ``pixel-7, screen on, cracked, lights off, frozen``."""
        scene = self._cache.scene
        parts = ["empty tray"] if scene.phone is None else [scene.phone.name]
        if scene.phone is not None:
            parts.append("screen on" if scene.screen_on else "screen off")
            parts += ["cracked"] if scene.cracked else []
        parts += [] if scene.lights_on else ["lights off"]
        parts += [] if self._flowing.is_set() else ["frozen"]
        parts += ["vanished"] if self._server is None and self._port else []
        return ", ".join(parts)

    @property
    def faults(self) -> list[str]:
        """The faults and actions :meth:`fault` accepts."""
        return [*actions.SCENE_ACTIONS, *LINK_FAULTS, "record"]

    @property
    def artifacts(self) -> list[str]:
        """The clips recorded since start, oldest first."""
        return [str(path) for path in self._artifacts]

    async def start(self) -> None:
        """Load the phone looks and listen on an OS-chosen port.

        :raises OSError: no port.
        :raises ValueError: the phone looks data file is malformed.
        """
        self._looks = await asyncio.to_thread(load_looks)
        await asyncio.to_thread(self._dir.mkdir, parents=True, exist_ok=True)
        await self._listen(0)
        log.info("camera at %s", self.endpoint)

    async def stop(self) -> None:
        """Close the listener and every connection."""
        await self._vanish()

    async def reset(self) -> None:
        """Empty tray, lights on, streaming, and listening (again) on the same port."""
        self._cache.show(Scene())
        self._placements = 0
        self._flowing.set()
        if self._server is None:
            await self._listen(self._port)

    async def fault(self, name: str, params: dict[str, str]) -> None:
        """Inject a fault or take an action; see the class docstring.

        :raises ValueError: an unknown fault, an unknown parameter or a bad value.
        :raises OSError: ``return`` could not listen on the port again, or ``record`` could not write.
        """
        if name in actions.SCENE_ACTIONS:
            seed = self._placements + 1
            self._cache.show(actions.apply(self._cache.scene, name, params, self._looks, seed))
            self._placements += name == "place"
        elif name == "record":
            check_params(name, params, RECORD_PARAMS)
            await self._record(params)
        elif name in LINK_FAULTS:
            check_params(name, params, ())
            await self._link_fault(name)
        else:
            raise ValueError(f"unknown fault {name!r} for the camera; it takes: {', '.join(self.faults)}")
        log.info("camera fault %s %s: %s", name, params, self.state)

    async def _link_fault(self, name: str) -> None:
        if name == "vanish":
            await self._vanish()
        elif name == "return":
            if self._server is None:
                await self._listen(self._port)
        elif name == "freeze":
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, limit=MAX_HEAD)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _vanish(self) -> None:
        """Stop listening and drop every client at once, like a camera that lost power."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _record(self, params: dict[str, str]) -> None:
        """Write the next clip and list it; the fault returns once the file is complete."""
        size_text = params.get("size", "1920x1080")
        if size_text not in SIZES:
            raise ValueError(f"unsupported size {size_text!r}; supported: {', '.join(SIZES)}")
        seed = int_param(params, "seed", 1, 0, actions.MAX_SEED)
        fps = int_param(params, "fps", DEFAULT_CLIP_FPS, 1, 60)
        path = await asyncio.to_thread(self._next_clip_path)
        scenes = demo_scenes(list(self._looks.values()), seed)
        count = await asyncio.to_thread(write_video, path, scenes, size=SIZES[size_text], fps=fps)
        self._artifacts.append(path)
        log.info("camera: recorded %d frames to %s", count, path)

    def _next_clip_path(self) -> Path:
        """``DIR/camera/clip-NNNN.avi``, numbered after the clips already there (made if missing)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self._dir.iterdir() if (m := _CLIP_NAME.fullmatch(p.name))]
        return self._dir / f"clip-{max(numbers, default=0) + 1:04d}.avi"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
            task.add_done_callback(self._clients.discard)
        try:
            await self._answer(reader, writer)
        except asyncio.CancelledError:
            # Only _vanish cancels a client. The camera is gone: no goodbye. The task ends normally,
            # because Python 3.11's streams server logs a cancelled client task as an error.
            writer.transport.abort()
            return
        except (ConnectionError, TimeoutError) as exc:
            log.info("camera: a client went away: %r", exc)
        except ValueError as exc:
            log.warning("camera: could not serve a frame: %s", exc)
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(WRITE_DEADLINE_S):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one request and answer it (for a stream, until the client leaves)."""
        try:
            async with asyncio.timeout(HEAD_DEADLINE_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            request: Request | Refusal = Refusal(431, f"request head longer than {MAX_HEAD} bytes")
        except asyncio.IncompleteReadError:
            return  # the client left before finishing its request
        else:
            request = parse_request(head)
        await self._flowing.wait()
        if isinstance(request, Refusal):
            await self._send(writer, refusal_response(request))
        elif request.path == SNAPSHOT_PATH:
            await self._send(writer, snapshot_response((await self._cache.frames(request.size))[0]))
        else:
            await self._stream(writer, request.size)

    async def _stream(self, writer: asyncio.StreamWriter, size: tuple[int, int]) -> None:
        """Send frames until the client leaves, at most one per period, never queueing more than one."""
        loop = asyncio.get_running_loop()
        await self._send(writer, stream_head())
        sent = 0
        due = loop.time()
        while True:
            await self._flowing.wait()
            frames = await self._cache.frames(size)
            await self._send(writer, stream_part(frames[sent % len(frames)]))
            sent += 1
            self._parts_sent += 1
            # A client that took longer than a period to take its frame starts a fresh period:
            # the frames it could not take are skipped, not sent late in a burst.
            due = max(due + self._period, loop.time())
            await asyncio.sleep(due - loop.time())

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        async with asyncio.timeout(WRITE_DEADLINE_S):
            await writer.drain()
