"""The thermal printer's link: ESC/POS bytes out, real-time status replies (DLE EOT 1 to 4) in.

One transaction at a time, a deadline on every step; a lost link (refused, reset, cable gone, no
answer) is dropped and made again on the next call. TCP uses asyncio streams; pyserial and pyusb
block, so each of those links has one worker thread that owns the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import serial  # type: ignore[import-untyped]
from escpos.printer import Usb  # type: ignore[import-untyped]

from hwd.errors import ConfigError, DeviceNotReady, DeviceUnavailable, HardwareFault, HwdError
from hwd.model.printer import PrinterStatus

log = logging.getLogger(__name__)

PRINTER_HINT = "check the printer's cable and power"
DLE_EOT = b"\x10\x04"
FIXED_MASK = 0x93  # bits 0, 1, 4 and 7 of every status reply are fixed ...
FIXED_BITS = 0x12  # ... to 0, 1, 1 and 0
DEFAULT_BAUD = 19200
STOP_HINTS = {
    "PAPER_OUT": "Load a new paper roll and close the cover.",
    "COVER_OPEN": "Close the printer cover.",
    "CUTTER_ERROR": "Open the cover, clear the paper at the cutter, close the cover.",
}
CUTTER_ERROR_BIT = 0x08  # DLE EOT 3
_T = TypeVar("_T")
PAPER_OUT_BITS = {2: 0x20, 4: 0x60}  # DLE EOT 2: stopped at paper end; DLE EOT 4: paper end sensor
COVER_OPEN_BIT = 0x04  # DLE EOT 2


class _Lost(Exception):
    """The link failed: it could not be made, it broke, or the printer did not answer in time."""


def decode_status(raw: tuple[int, int, int, int]) -> PrinterStatus:
    """Decodes the replies to DLE EOT 1, 2, 3 and 4 (Epson bit layout).

    :param raw: the four reply bytes, in query order.
    :returns: the status.
    :raises HardwareFault: a reply breaks the fixed bits (garbage: nothing is guessed from it).
    """
    for n, byte in enumerate(raw, start=1):
        check_reply(n, byte)
    printer, offline, error, paper = raw
    return PrinterStatus(
        online=not printer & 0x08,
        cover_open=bool(offline & COVER_OPEN_BIT),
        feed_button=bool(offline & 0x08),
        paper_near_end=bool(paper & 0x0C),
        paper_out=bool(paper & PAPER_OUT_BITS[4] or offline & PAPER_OUT_BITS[2]),
        cutter_error=bool(error & 0x08),
        unrecoverable_error=bool(error & 0x20),
        recoverable_error=bool(error & 0x40),
        raw=raw,
    )


def check_reply(n: int, byte: int) -> int:
    """Checks the fixed bits of the reply to DLE EOT n.

    :param n: the query, 1 to 4.
    :param byte: the reply.
    :returns: the reply.
    :raises HardwareFault: the fixed bits are wrong (garbage, or a byte that is not a reply).
    """
    if byte & FIXED_MASK != FIXED_BITS:
        raise HardwareFault(
            f"DLE EOT {n}: reply 0x{byte:02X} is not a status byte",
            device="printer",
            metadata={"query": str(n), "reply": f"0x{byte:02X}"},
        )
    return byte


class _Link(Protocol):
    async def write(self, data: bytes) -> None: ...

    async def read_byte(self) -> int: ...

    async def close(self) -> None: ...

    def is_broken(self) -> bool: ...


class _TcpLink:
    """A network printer (raw port 9100)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> _TcpLink:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise _Lost(f"cannot connect to {host}:{port}: {exc}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:  # status queries are 3 bytes: do not let Nagle hold them back
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise _Lost(f"write failed: {exc!r}") from exc

    async def read_byte(self) -> int:
        try:
            return (await self._reader.readexactly(1))[0]
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise _Lost("the printer closed the connection") from exc

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):  # a reset connection has nothing left to close
            await self._writer.wait_closed()

    def is_broken(self) -> bool:
        return self._reader.at_eof() or self._writer.is_closing()


class _ThreadLink:
    """A blocking device driven by its own single worker thread (the one owner of the device)."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._broken = False

    async def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except Exception as exc:  # pyserial, pyusb and python-escpos each have their own errors
            self._broken = True
            raise _Lost(repr(exc)) from exc

    async def start(self, fn: Callable[[], _T]) -> _T:
        """Runs the call that opens the device; the worker thread ends when it fails."""
        try:
            return await self.call(fn)
        except BaseException:  # a cancelled open too: nothing else will shut the pool down
            self._pool.shutdown(wait=False)
            raise

    async def shutdown(self, close: Callable[[], None]) -> None:
        try:
            await self.call(close)
        except _Lost as exc:
            log.debug("closing the printer link: %s", exc)
        finally:
            self._pool.shutdown(wait=False)

    def is_broken(self) -> bool:
        return self._broken


class _SerialLink(_ThreadLink):
    """A serial printer (8N1, no flow control: the printer consumes faster than 19200 baud)."""

    _port: Any

    @classmethod
    async def connect(cls, path: str, baud: int, timeout_s: float) -> _SerialLink:
        link = cls("printer-serial")
        link._port = await link.start(lambda: serial.Serial(path, baud, timeout=timeout_s, write_timeout=timeout_s))
        return link

    async def write(self, data: bytes) -> None:
        await self.call(lambda: (self._port.write(data), self._port.flush()))

    async def read_byte(self) -> int:
        reply: bytes = await self.call(self._port.read, 1)
        if not reply:
            raise _Lost("no status reply")
        return reply[0]

    async def close(self) -> None:
        await self.shutdown(self._port.close)


class _UsbLink(_ThreadLink):
    """A USB printer through python-escpos and pyusb (bulk endpoints 0x01 out, 0x82 in)."""

    _printer: Any

    @classmethod
    async def connect(cls, vid: int, pid: int, timeout_s: float) -> _UsbLink:
        link = cls("printer-usb")
        link._printer = Usb(vid, pid, timeout=int(timeout_s * 1000))  # pyusb counts in milliseconds
        await link.start(link._printer.open)
        return link

    async def write(self, data: bytes) -> None:
        await self.call(self._printer._raw, data)

    async def read_byte(self) -> int:
        reply = await self.call(self._printer._read)
        if not reply:
            raise _Lost("no status reply")
        return int(reply[0])

    async def close(self) -> None:
        await self.shutdown(self._printer.close)


@dataclass(frozen=True)
class Target:
    """Where the printer is: ``kind`` is "tcp", "serial" or "usb"."""

    kind: str
    address: str
    number: int
    product: int = 0


def parse_target(target: str) -> Target:
    """Reads "tcp:HOST:PORT", "serial:/dev/PATH[:BAUD]" or "usb:VID:PID" (hexadecimal ids).

    :param target: the configured target.
    :returns: the parsed target.
    :raises ConfigError: naming printer.target, when it is malformed.
    """
    kind, _, rest = target.partition(":")
    try:
        if kind == "tcp":
            host, _, port = rest.rpartition(":")
            if host:
                return Target("tcp", host.strip("[]"), int(port))
        elif kind == "serial" and rest.startswith("/"):
            path, _, baud = rest.partition(":")
            return Target("serial", path, int(baud) if baud else DEFAULT_BAUD)
        elif kind == "usb":
            vid, pid = rest.split(":")
            return Target("usb", "", int(vid, 16), int(pid, 16))
    except ValueError:
        pass
    raise ConfigError(f"printer.target: {target!r} is not tcp:HOST:PORT, serial:/dev/PATH[:BAUD] or usb:VID:PID")


class EscPosPrinter:
    """An ESC/POS printer with real-time status, over TCP, serial or USB.

    :param target: "tcp:HOST:PORT", "serial:/dev/PATH[:BAUD]" (19200 baud by default) or "usb:VID:PID".
    :param timeout_s: the deadline of one step (a status reading, or one chunk and its checks).
    :raises ConfigError: the target is malformed (nothing is opened here).
    """

    def __init__(self, target: str, *, timeout_s: float = 2.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._where = parse_target(target)
        self._link: _Link | None = None
        self._opened = False
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        """True between open() and close() (even while the printer is away)."""
        return self._opened

    async def open(self) -> None:
        """Connects to the printer; a second call does nothing.

        :raises DeviceUnavailable: the printer cannot be reached.
        """
        async with self._lock:
            if self._opened:
                return
            try:
                await self._connect()
            except (_Lost, TimeoutError) as exc:
                raise self._unavailable("open", exc) from exc
            self._opened = True

    async def close(self) -> None:
        """Disconnects; safe to call twice or when never opened."""
        async with self._lock:
            self._opened = False
            await self._drop()

    async def status(self) -> PrinterStatus:
        """Reads DLE EOT 1 to 4 within one deadline.

        :returns: the status.
        :raises DeviceUnavailable: not open, the link is lost, or no answer in time.
        :raises HardwareFault: a reply was not a status byte.
        """
        async with self._lock:
            try:
                await self._ready_link()
                async with asyncio.timeout(self.timeout_s):
                    return await self._read_status()
            except (_Lost, TimeoutError, HardwareFault) as exc:
                await self._drop()  # after garbage too: out of step with the printer, start on a fresh link
                if isinstance(exc, HardwareFault):
                    raise
                raise self._unavailable("status", exc) from exc

    async def send(self, segments: Sequence[bytes]) -> int:
        """Writes a job segment by segment, checking paper and cover before each one and after the
        last (between whole commands: a status query inside a command's data would be taken as data).

        :param segments: the job's ESC/POS bytes, cut at command boundaries (see render).
        :returns: the bytes sent (all of them).
        :raises DeviceNotReady: paper out or cover open (metadata ``reason``: PAPER_OUT or COVER_OPEN; ``bytes``).
        :raises DeviceUnavailable: not open, the link is lost, or no answer in time (``bytes``).
        :raises HardwareFault: a status reply was not a status byte (``bytes``).
        """
        async with self._lock:
            sent = 0
            try:
                await self._ready_link()
                for piece in segments:
                    async with asyncio.timeout(self.timeout_s):
                        await self._check_can_continue(sent)
                        assert self._link is not None
                        await self._link.write(piece)
                    sent += len(piece)
                async with asyncio.timeout(self.timeout_s):
                    # The replies come after everything sent before them: the printer has taken the
                    # whole job, cut included, and paper did not run out during the last segment.
                    await self._check_can_continue(sent, final=True)
            except (_Lost, TimeoutError) as exc:
                await self._drop()
                raise self._unavailable("send", exc, sent) from exc
            except HwdError as exc:
                exc.metadata.setdefault("bytes", str(sent))
                if isinstance(exc, HardwareFault):
                    await self._drop()
                raise
            return sent

    async def _check_can_continue(self, sent: int, final: bool = False) -> None:
        """Raises when paper or cover stop the job; ``final`` (after the cut) also asks for a cutter error."""
        paper, offline = await self._query(4), await self._query(2)
        reason = "PAPER_OUT" if paper & PAPER_OUT_BITS[4] or offline & PAPER_OUT_BITS[2] else ""
        reason = reason or ("COVER_OPEN" if offline & COVER_OPEN_BIT else "")
        if final and not reason and await self._query(3) & CUTTER_ERROR_BIT:
            reason = "CUTTER_ERROR"  # printed but not cut: the customer cannot take it
        if reason:
            raise DeviceNotReady(
                f"printer stopped after {sent} bytes: {reason.lower().replace('_', ' ')}",
                device="printer",
                hint=STOP_HINTS[reason],
                metadata={"reason": reason, "bytes": str(sent)},
            )

    async def _read_status(self) -> PrinterStatus:
        replies = [await self._query(n) for n in (1, 2, 3, 4)]
        return decode_status((replies[0], replies[1], replies[2], replies[3]))

    async def _query(self, n: int) -> int:
        """Sends DLE EOT n and reads its one-byte reply, checking the fixed bits."""
        assert self._link is not None
        await self._link.write(DLE_EOT + bytes((n,)))
        return check_reply(n, await self._link.read_byte())

    async def _ready_link(self) -> None:
        """Checks the printer is open and (re)makes a link that was lost."""
        if not self._opened:
            raise DeviceUnavailable(f"the printer {self.target} is not open", device="printer", hint=PRINTER_HINT)
        if self._link is not None and self._link.is_broken():
            log.info("printer %s: the link was lost; reconnecting", self.target)
            await self._drop()
        if self._link is None:
            await self._connect()

    async def _connect(self) -> None:
        where = self._where
        async with asyncio.timeout(self.timeout_s):
            if where.kind == "tcp":
                self._link = await _TcpLink.connect(where.address, where.number)
            elif where.kind == "serial":
                self._link = await _SerialLink.connect(where.address, where.number, self.timeout_s)
            else:
                self._link = await _UsbLink.connect(where.number, where.product, self.timeout_s)
        log.info("printer %s connected", self.target)

    async def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            try:
                async with asyncio.timeout(self.timeout_s):
                    await link.close()
            except TimeoutError:
                log.warning("printer %s: closing the link timed out", self.target)

    def _unavailable(self, what: str, exc: BaseException, sent: int | None = None) -> DeviceUnavailable:
        why = f"no answer within {self.timeout_s:.3f} s" if isinstance(exc, TimeoutError) else str(exc)
        meta, message = ({} if sent is None else {"bytes": str(sent)}), f"printer {self.target}: {what}: {why}"
        return DeviceUnavailable(message, device="printer", hint=PRINTER_HINT, metadata=meta)
