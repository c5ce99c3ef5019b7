"""The simulated 80 mm ESC/POS thermal receipt printer.

One printer, two ways in, like a printer with both an Ethernet and a serial port: TCP on
127.0.0.1 (the endpoint; a real one listens on port 9100) and the pty link ``DIR/printer-tty``
(open it like the printer's serial port). Each cut saves the receipt as
``DIR/receipts/receipt-NNNN.png``. Real-time status (``DLE EOT n``) is answered at once, in
every state, with Epson's status bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import tempfile
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from simulators import escpos
from simulators.device import check_params, int_param
from simulators.escpos import EscPosParser, Op
from simulators.line import PtyPair
from simulators.receipt import Receipt

log = logging.getLogger(__name__)

CLIENT_LINK = "printer-tty"
SIM_LINK = ".printer-tty-sim"
RECEIPTS = "receipts"
ROLL_MM = 20_000
NEAR_END_MM = 1_000
#: 203 dpi: 8 dot rows per millimetre, each 0.125 mm of paper.
ROWS_PER_MM = 8
FAULTS = ("paper-out", "load-paper", "cover-open", "cover-close", "offline", "online", "cutter-jam", "clear")
PACE = ("slow", "fast")
_RECEIPT_NAME = re.compile(r"receipt-(\d+)\.png")
# Epson status bits (DLE EOT n); every status byte has bits 1 and 4 set.
BASE = 0x12
OFFLINE = 0x08
COVER_OPEN, PAPER_END_STOP, ERROR = 0x04, 0x20, 0x40
AUTOCUTTER_ERROR = 0x08
NEAR_END, PAPER_END = 0x0C, 0x60


class PrinterState:
    """Paper, cover, cutter and the receipt in progress; applies operations and answers status.

    Not thread-safe: one caller at a time (:class:`PrinterSim` holds a lock).
    """

    def __init__(self, receipts: Path, roll_mm: int = ROLL_MM) -> None:
        """:param receipts: where receipt PNGs go; created by :meth:`prepare`."""
        self.receipts = receipts
        self.artifacts: list[Path] = []
        self._roll_rows = roll_mm * ROWS_PER_MM
        self._next_number = 1
        self._fresh()

    def _fresh(self) -> None:
        self.receipt = Receipt()
        self.paper_rows = self._roll_rows
        self.paper_out = self.cover_open = self.offline = False
        self.jam_armed = self.jammed = False

    def prepare(self) -> None:
        """Create the receipts directory; numbering goes on after receipts already in it."""
        self.receipts.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.receipts.iterdir() if (m := _RECEIPT_NAME.fullmatch(p.name))]
        self._next_number = max(numbers, default=0) + 1

    def reset(self) -> None:
        """A fresh roll, cover closed, online, no error, an empty receipt; saved receipts stay."""
        self._fresh()

    @property
    def ready(self) -> bool:
        """Prints (otherwise data is discarded, and status bit 3 of DLE EOT 1 says offline)."""
        return not (self.paper_out or self.cover_open or self.offline or self.jammed)

    @property
    def near_end(self) -> bool:
        """The near-end sensor: less than :data:`NEAR_END_MM` of paper left."""
        return self.paper_rows < NEAR_END_MM * ROWS_PER_MM

    @property
    def state(self) -> str:
        """E.g. ``ready, 2 receipts`` or ``paper out, cover open, 1 receipt``."""
        parts = [
            name
            for name, on in (("paper out", self.paper_out), ("cover open", self.cover_open), ("offline", self.offline),
                             ("cutter jam", self.jammed), ("cutter jam armed", self.jam_armed))
            if on
        ]  # fmt: skip
        if not self.paper_out and self.near_end:
            parts.append("paper near end")
        count = len(self.artifacts)
        return ", ".join([*(parts or ["ready"]), f"{count} receipt{'' if count == 1 else 's'}"])

    def status(self, query: escpos.StatusQuery) -> bytes:
        """The reply to a status query: one byte, or nothing for a function this printer lacks."""
        if query.kind == "gs":  # GS r 1: paper sensor (bits 0-1 near end, 2-3 end); GS r 2: drawer
            paper = (0x03 if self.near_end or self.paper_out else 0) | (0x0C if self.paper_out else 0)
            return {1: bytes([paper]), 49: bytes([paper]), 2: b"\0", 50: b"\0"}.get(query.n, b"")
        value = {
            1: OFFLINE if not self.ready else 0,
            2: (COVER_OPEN if self.cover_open else 0) | (PAPER_END_STOP if self.paper_out else 0)
            | (ERROR if self.jammed else 0),
            3: AUTOCUTTER_ERROR if self.jammed else 0,
            4: (NEAR_END if self.near_end or self.paper_out else 0) | (PAPER_END if self.paper_out else 0),
        }.get(query.n)  # fmt: skip
        return b"" if value is None else bytes([BASE | value])

    def handle(self, ops: Iterable[Op]) -> bytes:
        """Apply operations in order; data that arrives while the printer is not ready is discarded.

        :returns: the status replies, in order.
        """
        replies = bytearray()
        for op in ops:
            if isinstance(op, escpos.StatusQuery):
                replies += self.status(op)
            elif not self.ready:
                continue
            elif isinstance(op, escpos.Cut):
                self._cut(op)
            else:
                self._print(functools.partial(self.receipt.apply, op))
        return bytes(replies)

    def fault(self, name: str, params: dict[str, str]) -> None:
        """Inject a fault or take an action; see :class:`PrinterSim`.

        :raises ValueError: an unknown fault, an unknown parameter or a bad value.
        """
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} for the printer; it takes: {', '.join(FAULTS)}")
        check_params(name, params, ("after_mm",) if name == "paper-out" else ())
        if name == "paper-out":
            after = int_param(params, "after_mm", 0, 0, ROLL_MM)
            self.paper_rows = min(self.paper_rows, after * ROWS_PER_MM)
            if self.paper_rows == 0:
                self._run_out(self.receipt.height)
        elif name == "load-paper":
            self.paper_rows, self.paper_out = self._roll_rows, False
        elif name in ("cover-open", "cover-close"):
            self.cover_open = name == "cover-open"
        elif name in ("offline", "online"):
            self.offline = name == "offline"
        elif name == "cutter-jam":
            self.jam_armed = True
        else:
            self._clear()

    def _clear(self) -> None:
        """The cutter is freed; a cut that jammed now happens."""
        self.jam_armed = False
        if self.jammed:
            self.jammed = False
            self._save(self.receipt.finish())

    def _print(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the receipt and take the paper it used from the roll."""
        before = self.receipt.height
        action()
        used = self.receipt.height - before
        if used < self.paper_rows:
            self.paper_rows -= used
        elif used:
            self._run_out(before + self.paper_rows)

    def _run_out(self, rows: int) -> None:
        """The roll ends after ``rows`` rows of this receipt: it is saved torn, the rest of the data is lost."""
        self.paper_rows, self.paper_out = 0, True
        log.info("printer: paper out after %d rows of the receipt", rows)
        if rows > 0:
            self._save(self.receipt.tear(rows))
        else:
            self.receipt.tear(0, mark=False)

    def _cut(self, cut: escpos.Cut) -> None:
        self._print(lambda: self.receipt.feed(dots=cut.feed))
        if self.paper_out:
            return
        if self.jam_armed:
            self.jam_armed, self.jammed = False, True
            log.info("printer: the cutter jammed; the receipt waits for 'clear'")
            return
        self._save(self.receipt.finish())

    def _save(self, image: Image.Image | None) -> None:
        if image is None:
            return
        path = self.receipts / f"receipt-{self._next_number:04d}.png"
        self._next_number += 1
        save_png(path, image)
        self.artifacts.append(path)
        log.info("printer: receipt saved to %s (%d x %d dots)", path, image.width, image.height)


def save_png(path: Path, image: Image.Image) -> None:
    """Write ``image`` to ``path`` atomically: a temporary file, fsynced, renamed over it."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            image.save(tmp, format="PNG")
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


_Reply = Callable[[bytes], None]


class PrinterSim:
    """An ESC/POS thermal printer (80 mm, 576 dots, 203 dpi) on TCP and on a pty.

    Faults and actions: ``paper-out`` (param ``after_mm``, default 0: the roll ends after that
    many more millimetres; a receipt cut short is saved with a tear mark and later data is
    discarded), ``load-paper`` (a fresh roll), ``cover-open``/``cover-close``,
    ``offline``/``online``, ``cutter-jam`` (the next cut fails with an autocutter error; the
    receipt is cut and saved on ``clear``), ``clear``, ``slow`` (param ``ms``, default 200: each
    chunk received is handled that much later, like a printer busy printing; status replies wait
    their turn) and ``fast``. While the printer is not ready, status queries are answered and
    everything else is discarded.
    """

    name = "printer"
    kind = "escpos-printer"

    def __init__(self, directory: Path, *, roll_mm: int = ROLL_MM, socat: str = "socat") -> None:
        """:param directory: the simulator's ``--dir``: receipts and the pty link go there."""
        directory = Path(os.path.abspath(directory))
        self._printer = PrinterState(directory / RECEIPTS, roll_mm)
        self._pair = PtyPair(directory / CLIENT_LINK, directory / SIM_LINK, socat)
        self._client_link = directory / CLIENT_LINK
        self._lock = asyncio.Lock()
        self._queue: asyncio.Queue[tuple[list[Op], _Reply]] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._port = 0
        self._fd: int | None = None
        self._pty_parser = EscPosParser()
        self._tasks: set[asyncio.Task[None]] = set()
        self._delay_s = 0.0  # the "slow" fault

    @property
    def endpoint(self) -> str:
        """``tcp:127.0.0.1:PORT``; the serial way in is the pty link :attr:`tty`."""
        return f"tcp:127.0.0.1:{self._port}"

    @property
    def tty(self) -> Path:
        """The client's pty link, ``DIR/printer-tty``."""
        return self._client_link

    @property
    def state(self) -> str:
        """Paper, cover, cutter and the number of receipts, e.g. ``ready, 2 receipts``."""
        return self._printer.state

    @property
    def faults(self) -> list[str]:
        """The faults and actions :meth:`fault` accepts."""
        return [*FAULTS, *PACE]

    @property
    def artifacts(self) -> list[str]:
        """The PNG of every receipt cut (or torn) since start, oldest first."""
        return [str(path) for path in self._printer.artifacts]

    async def start(self) -> None:
        """Create the receipts directory, listen on TCP and serve the pty pair.

        :raises OSError: no port, no socat, or no receipts directory.
        """
        await asyncio.to_thread(self._printer.prepare)
        self._spawn(self._work(), "printer-worker")
        self._server = await asyncio.start_server(self._serve_client, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        self._fd = await self._pair.open()
        asyncio.get_running_loop().add_reader(self._fd, self._on_pty)
        log.info("printer at %s and %s", self.endpoint, self._client_link)

    async def stop(self) -> None:
        """Stop listening, drop the clients, remove the pty pair."""
        if self._server is not None:
            self._server.close()
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None
        await self._pair.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def reset(self) -> None:
        """A fresh roll, no fault, an empty receipt; the saved receipts stay."""
        async with self._lock:
            self._printer.reset()
            self._delay_s = 0.0

    async def fault(self, name: str, params: dict[str, str]) -> None:
        """Inject a fault or take an action; see the class docstring.

        :raises ValueError: an unknown fault, an unknown parameter or a bad value.
        """
        if name in PACE:
            check_params(name, params, ("ms",) if name == "slow" else ())
            self._delay_s = int_param(params, "ms", 200, 1, 10_000) / 1000 if name == "slow" else 0.0
        else:
            async with self._lock:
                await asyncio.to_thread(self._printer.fault, name, params)
        log.info("printer fault %s %s: %s", name, params, self.state)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work(self) -> None:
        """Apply what every client sent, one chunk at a time, and send the status replies."""
        while True:
            ops, reply = await self._queue.get()
            if self._delay_s:
                await asyncio.sleep(self._delay_s)  # the "slow" fault: a printer busy printing
            async with self._lock:
                replies = await asyncio.to_thread(self._printer.handle, ops) if ops else b""
            if replies:
                reply(replies)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        parser = EscPosParser()

        def reply(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        try:
            while data := await reader.read(65536):
                self._queue.put_nowait((parser.feed(data), reply))
            self._queue.put_nowait((parser.flush(), reply))
        except ConnectionError as exc:
            log.info("printer: a TCP client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _on_pty(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            data = b""
            log.warning("printer: reading the pty failed: %s", exc)
        if not data:
            log.warning("printer: the pty pair went away; the serial port is gone")
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None
            return
        self._queue.put_nowait((self._pty_parser.feed(data), self._reply_pty))

    def _reply_pty(self, data: bytes) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, data)
        except OSError as exc:
            log.warning("printer: status reply lost on the pty: %s", exc)
