"""The kiosk's simulated RS-485 line: Modbus RTU units served on a pty, with line faults.

A client (the daemon, ``mbpoll``, pymodbus) opens ``DIR/rs485`` as if it were the USB-RS485
adapter's tty. ``socat`` links that pty to a second one, ``DIR/.rs485-sim``, which this module
serves: it splits the requests (:mod:`simulators.rtu`), dispatches them by unit id to the
controllers on the line and writes the replies back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import random
import shutil
import termios
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from simulators import rtu
from simulators.device import check_params, int_param, seconds_param
from simulators.registers import RegisterUnit

log = logging.getLogger(__name__)

CLIENT_LINK = "rs485"
SIM_LINK = ".rs485-sim"
#: Inter-frame silence that ends a frame. Modbus RTU says 3.5 character times (about 0.3 ms at
#: 115200 baud); a pty delivers a frame in one piece but the event loop adds jitter, so be lenient.
SILENCE_S = 0.002
FAULTS = ("unplug", "replug", "stall", "garbage", "noise")
DEFAULT_STALL_S = 5.0
MAX_STALL_S = 3600.0
MAX_COUNT = 1000
NOISE_BYTES = 8
MAX_NOISE_BYTES = 64
#: How long socat may take to create both pty links, and to exit after SIGTERM.
LINK_DEADLINE_S = 5.0
SOCAT_EXIT_S = 2.0
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
#: Characters socat's address syntax gives a meaning to.
_SOCAT_SPECIAL = frozenset(",!\"'\\")


@runtime_checkable
class _Resettable(Protocol):
    async def reset(self) -> None: ...


class Rs485Line:
    """A simulated RS-485 line with its Modbus RTU units, served on a pty pair.

    Faults: ``unplug`` (the adapter vanishes: the pty pair goes away, an open client gets an
    error or EOF), ``replug`` (a new pair at the same path), ``stall`` (param ``seconds``,
    default 5: requests go unanswered and unserved), ``garbage`` (param ``count``, default 1:
    the next replies carry a bad CRC), ``noise`` (params ``count``, default 1, and ``bytes``,
    default 8: random bytes go out before each of the next replies).
    """

    name = "rs485"
    kind = "modbus-rtu-line"

    def __init__(
        self,
        directory: Path,
        units: Sequence[RegisterUnit],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        socat: str = "socat",
    ) -> None:
        """:param directory: where the pty links go (the simulator's ``--dir``).

        :param units: the controllers on the line; their unit ids must differ.
        :param clock: monotonic seconds, for stalls.
        :param rng: source of noise bytes.
        :param socat: the socat executable.
        :raises ValueError: two units share an id.
        """
        self._units: dict[int, RegisterUnit] = {}
        for unit in units:
            if unit.unit_id in self._units:
                raise ValueError(f"two units with id {unit.unit_id} on the RS-485 line")
            self._units[unit.unit_id] = unit
        directory = Path(os.path.abspath(directory))
        self._client_link = directory / CLIENT_LINK
        self._pair = PtyPair(self._client_link, directory / SIM_LINK, socat)
        self._clock = clock
        self._rng = rng or random.Random()
        self._splitter = rtu.FrameSplitter()
        self._silence: asyncio.TimerHandle | None = None
        self._fd: int | None = None
        self._started = False
        self._stopped = False
        self._stall_until = -math.inf
        self._garbage = 0
        self._noise = 0
        self._noise_bytes = NOISE_BYTES

    @property
    def endpoint(self) -> str:
        """Absolute path of the client's pty link, ``DIR/rs485``: open it like a serial port."""
        return str(self._client_link)

    @property
    def state(self) -> str:
        """``serving``, ``stalled``, ``unplugged`` (plus pending garbage or noise), or ``stopped``."""
        if self._stopped or not self._started:
            return "stopped" if self._stopped else "not started"
        parts = ["unplugged" if self._fd is None else "stalled" if self._stalled() else "serving"]
        if self._garbage:
            parts.append(f"garbage x{self._garbage}")
        if self._noise:
            parts.append(f"noise x{self._noise}")
        return ", ".join(parts)

    @property
    def faults(self) -> list[str]:
        """The faults :meth:`fault` accepts."""
        return list(FAULTS)

    async def start(self) -> None:
        """Create the pty pair and serve it.

        :raises OSError: socat is missing, failed, or made no ptys in time.
        """
        await self._plug()
        self._started = True

    async def stop(self) -> None:
        """Stop serving and remove the pty pair."""
        self._stopped = True
        await self._unplug()

    async def reset(self) -> None:
        """Clear the line faults, plug the adapter back in if it is out, and reset the units."""
        self._clear_faults()
        self._splitter.clear()
        if self._fd is None:
            await self._plug()
        for unit in self._units.values():
            if isinstance(unit, _Resettable):
                await unit.reset()

    async def fault(self, name: str, params: dict[str, str]) -> None:
        """Inject a line fault; see the class docstring.

        :raises ValueError: an unknown fault, an unknown parameter or a bad value.
        """
        if name == "unplug":
            check_params(name, params, ())
            await self._unplug()
        elif name == "replug":
            check_params(name, params, ())
            if self._fd is None:
                await self._plug()
        elif name == "stall":
            check_params(name, params, ("seconds",))
            seconds = seconds_param(params, "seconds", DEFAULT_STALL_S, MAX_STALL_S)
            self._stall_until = self._clock() + seconds
        elif name == "garbage":
            check_params(name, params, ("count",))
            self._garbage = int_param(params, "count", 1, 1, MAX_COUNT)
        elif name == "noise":
            check_params(name, params, ("count", "bytes"))
            self._noise = int_param(params, "count", 1, 1, MAX_COUNT)
            self._noise_bytes = int_param(params, "bytes", NOISE_BYTES, 1, MAX_NOISE_BYTES)
        else:
            raise ValueError(f"unknown fault {name!r} for {self.name}; it takes: {', '.join(FAULTS)}")
        log.info("rs485 line fault %s %s: %s", name, params, self.state)

    def _clear_faults(self) -> None:
        self._stall_until = -math.inf
        self._garbage = 0
        self._noise = 0
        self._noise_bytes = NOISE_BYTES

    def _stalled(self) -> bool:
        return self._clock() < self._stall_until

    async def _plug(self) -> None:
        fd = await self._pair.open()
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._on_readable)
        log.info("rs485 line serving units %s at %s", sorted(self._units), self.endpoint)

    async def _unplug(self) -> None:
        self._stop_serving()
        await self._pair.close()

    def _stop_serving(self) -> None:
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None
        self._splitter.clear()
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None  # the pair owns and closes the descriptor

    def _on_readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            data = b""
            log.warning("rs485 line: reading the pty failed: %s", exc)
        if not data:
            log.warning("rs485 line: the pty pair went away; the adapter counts as unplugged")
            self._stop_serving()
            return
        self._serve(self._splitter.feed(data))
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None
        if self._splitter.pending:
            self._silence = asyncio.get_running_loop().call_later(SILENCE_S, self._on_silence)

    def _on_silence(self) -> None:
        self._silence = None
        self._serve(self._splitter.flush())

    def _serve(self, frames: list[bytes]) -> None:
        for frame in frames:
            if self._stalled():
                log.info("rs485 line stalled: request to unit %d dropped", frame[0])
                continue
            reply = rtu.respond(frame, self._units)
            if reply is not None:
                self._send(self._disturb(reply))

    def _disturb(self, reply: bytes) -> bytes:
        if self._garbage:
            self._garbage -= 1
            reply = reply[:-2] + bytes([reply[-2] ^ 0xFF, reply[-1] ^ 0xFF])
        if self._noise:
            self._noise -= 1
            reply = self._rng.randbytes(self._noise_bytes) + reply
        return reply

    def _send(self, data: bytes) -> None:
        if self._fd is None:
            return
        try:
            written = os.write(self._fd, data)
        except OSError as exc:
            log.warning("rs485 line: reply of %d bytes lost: %s", len(data), exc)
            return
        if written != len(data):
            log.warning("rs485 line: reply cut to %d of %d bytes", written, len(data))


class PtyPair:
    """Two linked ptys made by ``socat``: the client's end and the simulator's end.

    socat copies bytes between the two masters; each link points at one slave. Killing socat
    removes both links and hangs up whoever still holds the client's end, like a USB adapter
    pulled out.
    """

    def __init__(self, client_link: Path, sim_link: Path, socat: str = "socat") -> None:
        self._links = (client_link, sim_link)
        self._socat = socat
        self._proc: asyncio.subprocess.Process | None = None
        self._fd: int | None = None

    async def open(self) -> int:
        """Start socat, wait for both links, open the simulator's end raw and non-blocking.

        :returns: the simulator end's descriptor, owned by this pair until :meth:`close`.
        :raises OSError: socat is missing or failed, or the links did not appear in time.
        """
        await self.close()
        for link in self._links:
            if _SOCAT_SPECIAL & set(str(link)):
                raise OSError(f"socat cannot take the path {link}: choose a --dir without , ! \\ or quotes")
            with contextlib.suppress(FileNotFoundError):
                link.unlink()  # a stale link from a crash
        client, sim = self._links
        # socat's messages join the simulator's stderr only if socat cannot outlive it: an orphan
        # holding that pipe open would keep whoever reads it waiting.
        prefix = _dies_with_us()
        self._proc = await asyncio.create_subprocess_exec(
            *prefix, self._socat, f"pty,raw,echo=0,link={client}", f"pty,raw,echo=0,link={sim}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=None if prefix else asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await _wait_for_links(self._links, self._proc)
            self._fd = _open_raw(sim)
        except BaseException:
            await self.close()
            raise
        return self._fd

    async def close(self) -> None:
        """Close the simulator's end, stop socat and make sure both links are gone."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(SOCAT_EXIT_S):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if proc is not None:
            for link in self._links:
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()


def _dies_with_us() -> list[str]:
    """A prefix that makes socat get SIGTERM when the simulator dies, even by SIGKILL.

    SIGTERM lets socat remove its links; ``setpriv`` (util-linux) sets the parent-death signal
    and then runs socat in its place. Without setpriv, a killed simulator leaves socat behind.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _open_raw(path: Path) -> int:
    """Open a pty slave for reading and writing, raw 8N1 at 115200 baud, non-blocking."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        iflag, oflag, cflag, lflag, _, _, cc = termios.tcgetattr(fd)
        iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR)
        iflag &= ~(termios.IGNCR | termios.ICRNL | termios.IXON | termios.IXOFF)
        oflag &= ~termios.OPOST
        lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        cflag = (cflag & ~(termios.CSIZE | termios.PARENB | termios.CSTOPB)) | termios.CS8 | termios.CREAD
        cc[termios.VMIN], cc[termios.VTIME] = 1, 0
        attrs = [iflag, oflag, cflag, lflag, termios.B115200, termios.B115200, cc]
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except BaseException:
        os.close(fd)
        raise
    return fd


async def _wait_for_links(links: Sequence[Path], proc: asyncio.subprocess.Process) -> None:
    """Wait until every link exists, woken by inotify on their directory or by socat exiting.

    :raises OSError: socat exited first, or :data:`LINK_DEADLINE_S` passed.
    """
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    fd = _inotify(links[0].parent)
    loop.add_reader(fd, _drain, fd, woken)
    exited = asyncio.ensure_future(proc.wait())
    exited.add_done_callback(lambda _: woken.set())
    try:
        async with asyncio.timeout(LINK_DEADLINE_S):
            while True:
                woken.clear()
                if all(os.path.lexists(link) for link in links):
                    return
                if exited.done():
                    raise OSError(f"socat exited with status {proc.returncode} before making the ptys")
                await woken.wait()
    except TimeoutError:
        raise OSError(f"socat made no pty links within {LINK_DEADLINE_S:g} s") from None
    finally:
        loop.remove_reader(fd)
        os.close(fd)
        exited.cancel()


def _inotify(directory: Path) -> int:
    """A non-blocking inotify descriptor watching ``directory`` for new entries."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    if int(libc.inotify_add_watch(fd, os.fsencode(directory), _IN_CREATE | _IN_MOVED_TO)) < 0:
        errno = ctypes.get_errno()
        os.close(fd)
        raise OSError(errno, f"cannot watch {directory}: {os.strerror(errno)}")
    return fd


def _drain(fd: int, woken: asyncio.Event) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass
    woken.set()
