"""The Modbus drivers without a line: decoding, error mapping, lost replies, and the fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymodbus.exceptions import ConnectionException
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.register_message import ReadInputRegistersResponse, WriteMultipleRegistersResponse

from hwd.drivers import binlock, carousel
from hwd.drivers.binlock import ModbusBinLock
from hwd.drivers.carousel import ModbusCarousel
from hwd.drivers.modbus import RtuLink, decode_firmware, exception_error, write_command
from hwd.errors import DeviceNotReady, DeviceUnavailable, HardwareFault, HwdError, InvalidArgument
from hwd.model import CableTest, CommandResult, Connector
from hwd.services.controllers import FakeBinLock, FakeCarousel

# ---- decoding ----------------------------------------------------------------------------------


def carousel_head(status: int = 0, **regs: int) -> list[int]:
    head = [0x4857, 0x0C01, 0x0102, 8, status, 0, 0xFFFF, 0xFFFF, 0, 0]
    for name, value in regs.items():
        head[getattr(carousel, name)] = value
    return head


@pytest.mark.parametrize(
    ("bit", "field"),
    [
        (0, "homed"),
        (1, "moving"),
        (2, "in_position"),
        (3, "fault"),
        (4, "jam"),
        (5, "over_current"),
        (6, "testing"),
    ],
)
def test_carousel_status_bits(bit: int, field: str) -> None:
    fields = ("homed", "moving", "in_position", "fault", "jam", "over_current", "testing")
    state = carousel.decode_state(carousel_head(status=1 << bit), [])
    assert {f: getattr(state, f) for f in fields} == {f: f == field for f in fields}


def test_carousel_registers_decode() -> None:
    head = carousel_head(
        status=0b101, FAULT_CODE=2, CURRENT_SLOT=3, TARGET_SLOT=3, COMMAND_COUNTER=65535, LAST_RESULT=2
    )
    state = carousel.decode_state(head, [0, 1, 2, 3, 4, 9])
    assert (state.current_slot, state.target_slot, state.slot_count) == (3, 3, 8)
    assert state.command_counter == 65535
    assert state.last_result is CommandResult.FAILED
    assert (state.fault_code, state.fault_name) == (2, "OVER_CURRENT")
    assert state.connectors == (
        Connector.EMPTY,
        Connector.USB_C,
        Connector.LIGHTNING,
        Connector.MICRO_USB,
        Connector.USB_A,
        Connector.UNKNOWN,
    )


def test_carousel_no_slot_and_unknown_codes() -> None:
    state = carousel.decode_state(carousel_head(FAULT_CODE=77, LAST_RESULT=9), [])
    assert state.current_slot is None
    assert state.target_slot is None
    assert state.fault_name == "UNKNOWN_77"
    assert state.last_result is CommandResult.UNKNOWN


@pytest.mark.parametrize(
    ("bit", "field"),
    [
        (0, "bolt_extended"),
        (1, "door_closed"),
        (2, "unlock_output"),
        (3, "tamper"),
        (4, "forced"),
        (5, "relock_pending"),
        (6, "fault"),
    ],
)
def test_lock_status_bits(bit: int, field: str) -> None:
    fields = ("bolt_extended", "door_closed", "unlock_output", "tamper", "forced", "relock_pending", "fault")
    state = binlock.decode_state([0x4857, 0x0B01, 0x0103, 1 << bit, 0, 0, 0, 0])
    assert {f: getattr(state, f) for f in fields} == {f: f == field for f in fields}


def test_lock_registers_decode() -> None:
    state = binlock.decode_state([0x4857, 0x0B01, 0x0103, 0b11, 1, 41, 25, 65535])
    assert state.locked
    assert (state.fault_code, state.fault_name) == (1, "BOLT_JAMMED")
    assert (state.command_counter, state.relock_remaining_s, state.door_open_s) == (41, 25, 65535)


def test_firmware_decodes_major_minor() -> None:
    assert decode_firmware(0x0102) == "1.2"
    assert decode_firmware(0x0A03) == "10.3"


# ---- error mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls", "reason"),
    [
        (4, HardwareFault, "HARDWARE_FAULT"),
        (6, DeviceNotReady, "DEVICE_NOT_READY"),
        (3, DeviceNotReady, "DEVICE_NOT_READY"),
        (2, HwdError, "INTERNAL"),
        (1, HwdError, "INTERNAL"),
    ],
)
def test_exception_codes_map_to_errors(code: int, cls: type[HwdError], reason: str) -> None:
    err = exception_error(code, "write 100 on unit 1 at /dev/x", "/dev/x")
    assert type(err) is cls
    assert err.reason == reason
    assert err.metadata == {"modbus_exception": str(code)}
    assert err.device == "/dev/x"


class FakeClient:
    """Stands in for pymodbus's client: each call pops the next outcome."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.connected = True
        self.closed = False
        self.calls = 0

    async def _next(self) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if outcome == "hang":
            await asyncio.sleep(10)
        if isinstance(outcome, BaseException):
            if isinstance(outcome, ConnectionException):
                self.connected = False
            raise outcome
        return outcome

    def read_input_registers(self, address: int, *, count: int, device_id: int) -> Awaitable[Any]:
        return self._next()

    def write_registers(self, address: int, values: list[int], *, device_id: int) -> Awaitable[Any]:
        return self._next()

    def close(self) -> None:
        self.closed = True


def opened_link(client: FakeClient, retries: int = 2) -> RtuLink:
    link = RtuLink("/dev/ttyTEST", timeout_s=0.05, retries=retries, backoff_s=0.001)
    link._opened = True
    link._client = client  # type: ignore[assignment]
    return link


@pytest.mark.parametrize(("code", "cls"), [(4, HardwareFault), (6, DeviceNotReady), (2, HwdError)])
async def test_link_raises_exception_responses_without_retry(code: int, cls: type[HwdError]) -> None:
    client = FakeClient(ExceptionResponse(0x04, code, 1))
    with pytest.raises(cls) as info:
        await opened_link(client).read_input(1, 0, 3)
    assert info.value.metadata["modbus_exception"] == str(code)
    assert "unit 1" in info.value.message
    assert client.calls == 1


async def test_link_retries_timeouts_then_gives_up() -> None:
    client = FakeClient("hang", "hang", "hang")
    with pytest.raises(DeviceUnavailable) as info:
        await opened_link(client).read_input(2, 0, 8)
    assert info.value.reason == "DEVICE_UNAVAILABLE"
    assert "/dev/ttyTEST" in info.value.message
    assert "unit 2" in info.value.message
    assert "RS-485" in info.value.hint
    assert client.calls == 3


async def test_link_retry_succeeds_after_a_timeout() -> None:
    client = FakeClient("hang", ReadInputRegistersResponse(registers=[7, 8]))
    assert await opened_link(client).read_input(1, 0, 2) == [7, 8]


async def test_link_drops_a_vanished_port_and_reopens(monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeClient(ConnectionException("gone"))
    link = opened_link(client, retries=1)
    fresh = FakeClient(ReadInputRegistersResponse(registers=[5]))

    async def connect() -> None:
        link._client = fresh  # type: ignore[assignment]

    monkeypatch.setattr(link, "_connect", connect)
    assert await link.read_input(1, 8, 1) == [5]
    assert client.closed


async def test_link_refuses_calls_when_not_open() -> None:
    with pytest.raises(DeviceUnavailable, match="not open"):
        await RtuLink("/dev/ttyTEST").read_input(1, 0, 1)


async def test_open_a_missing_port_is_unavailable(tmp_path: Any) -> None:
    link = RtuLink(str(tmp_path / "nope"), timeout_s=0.2)
    with pytest.raises(DeviceUnavailable, match="nope"):
        await link.open()
    await link.close()
    await link.close()


# ---- lost replies ------------------------------------------------------------------------------


class FakeLink:
    """A line with one unit whose counter may move without a reply reaching us."""

    port = "/dev/ttyFAKE"
    retries = 2
    backoff_s = 0.0

    def __init__(self, counter: int, writes: list[Callable[[], None]]) -> None:
        self.counter = counter
        self.writes = writes
        self.written: list[list[int]] = []
        self.counter_reads = 0

    async def read_input(self, unit: int, address: int, count: int) -> list[int]:
        self.counter_reads += 1
        return [self.counter]

    async def write_registers(self, unit: int, address: int, values: list[int], *, retries: int | None = None) -> None:
        assert retries == 0, "a command write must never be retried blindly"
        self.written.append(list(values))
        self.writes.pop(0)()


async def test_write_command_plain() -> None:
    link = FakeLink(10, [lambda: setattr(link, "counter", 11)])
    assert await write_command(link, 1, 100, 8, [2, 3]) == 11  # type: ignore[arg-type]
    assert link.written == [[2, 3]]


def lost_reply(link: FakeLink, taken: bool) -> Callable[[], None]:
    def act() -> None:
        if taken:
            link.counter = (link.counter + 1) % 65536
        raise DeviceUnavailable("no reply", device=link.port)

    return act


async def test_lost_reply_of_a_taken_command_is_not_repeated() -> None:
    link = FakeLink(65535, [])
    link.writes = [lost_reply(link, taken=True)]
    assert await write_command(link, 1, 100, 8, [1, 0]) == 0  # type: ignore[arg-type]
    assert link.written == [[1, 0]]
    assert link.counter_reads == 2


async def test_lost_request_is_repeated() -> None:
    link = FakeLink(4, [])
    link.writes = [lost_reply(link, taken=False), lambda: setattr(link, "counter", 5)]
    assert await write_command(link, 1, 100, 8, [1, 0]) == 5  # type: ignore[arg-type]
    assert link.written == [[1, 0], [1, 0]]


async def test_command_gives_up_after_the_retries() -> None:
    link = FakeLink(4, [])
    link.writes = [lost_reply(link, taken=False)] * 3
    with pytest.raises(DeviceUnavailable, match="no reply after 3 attempts"):
        await write_command(link, 1, 100, 8, [1, 0])  # type: ignore[arg-type]
    assert link.counter == 4


async def test_refused_command_is_not_retried() -> None:
    link = FakeLink(4, [])

    def refuse() -> None:
        raise exception_error(3, "write", link.port)

    link.writes = [refuse]
    with pytest.raises(DeviceNotReady):
        await write_command(link, 1, 100, 8, [2, 9])  # type: ignore[arg-type]


async def test_drivers_write_command_and_argument_together() -> None:
    client = FakeClient(
        ReadInputRegistersResponse(registers=[8]),  # SLOT_COUNT for the range check
        ReadInputRegistersResponse(registers=[41]),  # COMMAND_COUNTER before
        WriteMultipleRegistersResponse(address=100, count=2),
    )
    assert await ModbusCarousel(opened_link(client)).move(5) == 42
    with pytest.raises(InvalidArgument):
        await ModbusCarousel(opened_link(FakeClient(ReadInputRegistersResponse(registers=[8])))).move(8)
    with pytest.raises(InvalidArgument):
        await ModbusBinLock(opened_link(FakeClient())).unlock(601)


# ---- the fakes ---------------------------------------------------------------------------------


async def test_fake_carousel_follows_the_interface() -> None:
    fake = FakeCarousel(cable_results={3: CableTest.SHORT})
    with pytest.raises(DeviceUnavailable):
        await fake.state()
    await fake.open()
    assert (await fake.identity()).firmware == "1.2"
    with pytest.raises(DeviceNotReady):
        await fake.move(1)
    assert await fake.home() == 1
    assert await fake.move(3) == 2
    state = await fake.state()
    assert (state.current_slot, state.in_position, state.command_counter) == (3, True, 2)
    with pytest.raises(InvalidArgument):
        await fake.move(8)
    with pytest.raises(DeviceNotReady):
        await fake.test_cable(2)
    assert await fake.cable_test(3) is CableTest.NEVER
    await fake.test_cable(3)
    assert await fake.cable_test(3) is CableTest.SHORT
    assert (await fake.state()).over_current
    await fake.clear_fault()
    assert not (await fake.state()).fault
    await fake.close()


async def test_fake_carousel_jam_needs_home() -> None:
    fake = FakeCarousel()
    await fake.open()
    await fake.home()
    fake.jam()
    state = await fake.state()
    assert (state.jam, state.fault_name, state.current_slot) == (True, "JAM", None)
    await fake.clear_fault()
    assert not (await fake.state()).homed
    await fake.home()
    assert (await fake.state()).homed


async def test_fake_bin_lock_follows_the_interface() -> None:
    fake = FakeBinLock()
    await fake.open()
    assert (await fake.identity()).model == 0x0B01
    assert (await fake.state()).locked
    assert await fake.unlock(0) == 1
    state = await fake.state()
    assert (state.bolt_extended, state.unlock_output, state.relock_remaining_s) == (False, True, 30)
    fake.set_door(closed=False)
    await fake.lock()
    assert not (await fake.state()).bolt_extended  # waits for the door
    fake.set_door(closed=True)
    assert (await fake.state()).locked
    fake.set_door(closed=False)
    assert (await fake.state()).forced
    await fake.clear_tamper()
    assert not (await fake.state()).forced
    with pytest.raises(InvalidArgument):
        await fake.unlock(601)
    await fake.close()
