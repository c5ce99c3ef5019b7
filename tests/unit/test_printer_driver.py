"""The printer link: status decoding, and the driver against a scripted ESC/POS printer on TCP and a pty."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest

from hwd.drivers.printer import EscPosPrinter, Target, decode_status, parse_target
from hwd.errors import ConfigError, DeviceNotReady, DeviceUnavailable, HardwareFault
from hwd.model import PrinterStatus
from hwd.services.printer_port import FakePrinter, PrinterPort

IDLE = 0x12
DLE_EOT = b"\x10\x04"
FLAGS = (
    "online",
    "cover_open",
    "feed_button",
    "paper_near_end",
    "paper_out",
    "cutter_error",
    "unrecoverable_error",
    "recoverable_error",
)

# ---- decoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "bits", "changed"),
    [
        (1, 0x08, {"online": False}),
        (2, 0x04, {"cover_open": True}),
        (2, 0x08, {"feed_button": True}),
        (2, 0x20, {"paper_out": True}),
        (2, 0x40, {}),  # "an error occurred": the cause is in DLE EOT 3
        (3, 0x08, {"cutter_error": True}),
        (3, 0x20, {"unrecoverable_error": True}),
        (3, 0x40, {"recoverable_error": True}),
        (4, 0x0C, {"paper_near_end": True}),
        (4, 0x60, {"paper_out": True}),
        (1, 0x04, {}),  # drawer kick connector pin 3: not the printer's business here
    ],
)
def test_status_bits(query: int, bits: int, changed: dict[str, bool]) -> None:
    raw = [IDLE] * 4
    raw[query - 1] |= bits
    status = decode_status((raw[0], raw[1], raw[2], raw[3]))
    expected = {flag: flag == "online" for flag in FLAGS} | changed
    assert {flag: getattr(status, flag) for flag in FLAGS} == expected
    assert status.raw == tuple(raw)


@pytest.mark.parametrize("byte", [0x00, 0xFF, 0x13, 0x92, 0x10, 0x02, 0x32 | 0x80])
@pytest.mark.parametrize("query", [1, 2, 3, 4])
def test_garbage_reply_is_a_hardware_fault(query: int, byte: int) -> None:
    raw = [IDLE] * 4
    raw[query - 1] = byte
    with pytest.raises(HardwareFault) as err:
        decode_status((raw[0], raw[1], raw[2], raw[3]))
    assert err.value.metadata == {"query": str(query), "reply": f"0x{byte:02X}"}


def test_ready_status() -> None:
    assert decode_status((IDLE,) * 4) == PrinterStatus.ready()
    assert PrinterStatus.ready().can_print


@pytest.mark.parametrize(
    ("target", "parsed"),
    [
        ("tcp:10.0.0.5:9100", Target("tcp", "10.0.0.5", 9100)),
        ("tcp:[::1]:9100", Target("tcp", "::1", 9100)),
        ("serial:/dev/hwd/printer", Target("serial", "/dev/hwd/printer", 19200)),
        ("serial:/dev/ttyUSB0:115200", Target("serial", "/dev/ttyUSB0", 115200)),
        ("usb:04b8:0202", Target("usb", "", 0x04B8, 0x0202)),
    ],
)
def test_parse_target(target: str, parsed: Target) -> None:
    assert parse_target(target) == parsed


@pytest.mark.parametrize("target", ["", "tcp:host", "tcp::9100", "serial:dev", "usb:04b8", "usb:xx:yy", "lp:/dev/lp0"])
def test_bad_target_is_a_config_error(target: str) -> None:
    with pytest.raises(ConfigError, match=r"printer\.target"):
        EscPosPrinter(target)


# ---- a scripted printer on TCP -----------------------------------------------------------------


class ScriptedPrinter:
    """Answers DLE EOT n from ``replies``; records everything else; runs out of paper on cue."""

    def __init__(self) -> None:
        self.replies = {1: IDLE, 2: IDLE, 3: IDLE, 4: IDLE}
        self.received = bytearray()
        self.queries: list[int] = []
        self.connections = 0
        self.paper_after: int | None = None
        self.drop_on_query: int | None = None
        self.mute = False

    def reply(self, n: int) -> int:
        if self.paper_after is not None and len(self.received) >= self.paper_after:
            return self.replies[n] | {2: 0x20 | 0x08, 4: 0x6C}.get(n, 0)
        return self.replies[n]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._serve(reader, writer)
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pending = b""
        while data := await reader.read(4096):
            pending += data
            while (at := pending.find(DLE_EOT)) != -1 and len(pending) >= at + 3:
                self.received += pending[:at]
                n, pending = pending[at + 2], pending[at + 3 :]
                self.queries.append(n)
                if n == self.drop_on_query:
                    self.drop_on_query = None
                    return
                if not self.mute:
                    writer.write(bytes((self.reply(n),)))
            if DLE_EOT[:1] not in pending:
                self.received += pending
                pending = b""


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedPrinter, str]]:
    script = ScriptedPrinter()
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield script, f"tcp:127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@pytest.fixture
async def printer(scripted: tuple[ScriptedPrinter, str]) -> AsyncIterator[EscPosPrinter]:
    p = EscPosPrinter(scripted[1], timeout_s=0.5)
    await p.open()
    yield p
    await p.close()


async def test_status_over_tcp(scripted: tuple[ScriptedPrinter, str], printer: EscPosPrinter) -> None:
    script, _ = scripted
    script.replies[4] = IDLE | 0x0C
    status = await printer.status()
    assert status.paper_near_end
    assert not status.paper_out
    assert status.raw == (IDLE, IDLE, IDLE, IDLE | 0x0C)
    assert script.queries == [1, 2, 3, 4]


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_send_checks_paper_and_cover_before_each_chunk(
    scripted: tuple[ScriptedPrinter, str], printer: EscPosPrinter
) -> None:
    script, _ = scripted
    data = bytes(range(32, 127)) * 30  # 2850 bytes, no DLE
    assert await printer.send(_chunks(data, 1024)) == len(data)
    await printer.status()  # the reply proves every byte before it arrived
    assert bytes(script.received) == data
    assert script.queries == [4, 2, 4, 2, 4, 2, 4, 2, 3, 1, 2, 3, 4]


async def test_paper_out_mid_job_stops_with_the_bytes_sent(
    scripted: tuple[ScriptedPrinter, str], printer: EscPosPrinter
) -> None:
    script, _ = scripted
    script.paper_after = 2000
    with pytest.raises(DeviceNotReady) as err:
        await printer.send(_chunks(b"x" * 5000, 1024))
    assert err.value.metadata == {"reason": "PAPER_OUT", "bytes": "2048"}
    assert len(script.received) == 2048
    assert (await printer.status()).paper_out


async def test_cover_open_stops_before_the_first_byte(
    scripted: tuple[ScriptedPrinter, str], printer: EscPosPrinter
) -> None:
    script, _ = scripted
    script.replies[2] = IDLE | 0x04
    with pytest.raises(DeviceNotReady) as err:
        await printer.send([b"hello"])
    assert err.value.metadata == {"reason": "COVER_OPEN", "bytes": "0"}
    assert script.received == b""


async def test_reconnects_after_the_connection_is_lost(
    scripted: tuple[ScriptedPrinter, str], printer: EscPosPrinter
) -> None:
    script, _ = scripted
    script.drop_on_query = 2
    with pytest.raises(DeviceUnavailable) as err:
        await printer.status()
    assert err.value.hint == "check the printer's cable and power"
    assert (await printer.status()) == PrinterStatus.ready()
    assert script.connections == 2


async def test_garbage_reply_drops_the_link(scripted: tuple[ScriptedPrinter, str], printer: EscPosPrinter) -> None:
    script, _ = scripted
    script.replies[3] = 0xFF
    with pytest.raises(HardwareFault):
        await printer.status()
    script.replies[3], script.replies[4] = IDLE, 0x00
    with pytest.raises(HardwareFault) as err:
        await printer.send([b"abc"])  # garbage in the paper check: nothing sent
    assert err.value.metadata == {"query": "4", "reply": "0x00", "bytes": "0"}
    assert script.received == b""
    script.replies[4] = IDLE
    assert await printer.status() == PrinterStatus.ready()
    assert script.connections == 3


async def test_no_answer_is_unavailable_within_the_deadline(
    scripted: tuple[ScriptedPrinter, str], printer: EscPosPrinter
) -> None:
    script, _ = scripted
    script.mute = True
    with pytest.raises(DeviceUnavailable, match=r"no answer within 0\.500 s"):
        await asyncio.wait_for(printer.status(), 5)
    with pytest.raises(DeviceUnavailable) as err:
        await printer.send([b"abc"])
    assert err.value.metadata == {"bytes": "0"}


async def test_refused_connection_is_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = EscPosPrinter(f"tcp:127.0.0.1:{port}", timeout_s=0.5)
    with pytest.raises(DeviceUnavailable) as err:
        await p.open()
    assert err.value.hint == "check the printer's cable and power"
    assert not p.is_open
    await p.close()


async def test_calls_need_open_and_open_close_are_guarded(scripted: tuple[ScriptedPrinter, str]) -> None:
    p = EscPosPrinter(scripted[1])
    with pytest.raises(DeviceUnavailable, match="not open"):
        await p.status()
    await p.open()
    await p.open()
    await p.close()
    await p.close()
    assert scripted[0].connections == 1


# ---- serial on a pty ---------------------------------------------------------------------------


async def test_status_and_send_over_serial_pty() -> None:
    master, slave = os.openpty()
    received = bytearray()
    loop = asyncio.get_running_loop()

    def on_readable() -> None:
        data = os.read(master, 4096)
        received.extend(data)
        for _ in range(data.count(DLE_EOT)):
            os.write(master, bytes((IDLE,)))

    loop.add_reader(master, on_readable)
    p = EscPosPrinter(f"serial:{os.ttyname(slave)}:115200", timeout_s=1.0)
    try:
        await p.open()
        assert await p.status() == PrinterStatus.ready()
        assert await p.send([b"hello"]) == 5
        await p.status()
        assert b"hello" in received
    finally:
        await p.close()
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)


# ---- the fake ----------------------------------------------------------------------------------


async def test_fake_printer_runs_out_of_paper() -> None:
    fake: PrinterPort = FakePrinter(paper_after=1500)
    assert isinstance(fake, FakePrinter)
    with pytest.raises(DeviceUnavailable):
        await fake.send([b"x"])
    await fake.open()
    assert await fake.send([b"a" * 1000]) == 1000
    with pytest.raises(DeviceNotReady) as err:
        await fake.send([b"b" * 1000, b"c" * 1000, b"d" * 1000])
    assert err.value.metadata == {"reason": "PAPER_OUT", "bytes": "1000"}
    assert len(fake.data) == 2000
    assert (await fake.status()).paper_out
