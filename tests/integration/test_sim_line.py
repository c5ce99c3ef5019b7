"""The simulated RS-485 line: Modbus RTU on a pty, checked with pymodbus and byte-exact, and its faults."""

from __future__ import annotations

import asyncio
import os
import select
import termios
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from simulators import rtu
from simulators.line import Rs485Line
from simulators.registers import ILLEGAL_DATA_ADDRESS, ModbusError
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, simulator_fixtures

CAROUSEL, BINLOCK = 1, 2
HOMED, MOVING, IN_POSITION = 0x01, 0x02, 0x04
HOME_DEADLINE_S = 10.0
CLIENT_TIMEOUT_S = 1.0


kiosk, control = simulator_fixtures("line")


def port(kiosk: dict[str, Any]) -> str:
    endpoint: str = kiosk["devices"]["rs485"]["endpoint"]
    return endpoint


def client_for(path: str) -> ModbusSerialClient:
    client = ModbusSerialClient(
        path, framer=FramerType.RTU, baudrate=115200, timeout=CLIENT_TIMEOUT_S, retries=0, reconnect_delay=0
    )
    assert client.connect()
    return client


@pytest.fixture
def client(kiosk: dict[str, Any]) -> Iterator[ModbusSerialClient]:
    modbus = client_for(port(kiosk))
    yield modbus
    modbus.close()


def fault(stub: simulator_pb2_grpc.SimulatorStub, device: str, name: str, **params: str) -> simulator_pb2.SimDevice:
    request = simulator_pb2.FaultRequest(device=device, fault=name, params=params)
    response: simulator_pb2.FaultResponse = stub.Fault(request, timeout=RPC_TIMEOUT_S)
    return response.device


def read_input(client: ModbusSerialClient, address: int, count: int, unit: int = CAROUSEL) -> list[int]:
    response = client.read_input_registers(address, count=count, device_id=unit)
    assert not response.isError(), response
    return list(response.registers)


def read_fails(client: ModbusSerialClient) -> bool:
    """Whether a read of the carousel identity fails, as pymodbus reports it."""
    try:
        return bool(client.read_input_registers(0, count=4, device_id=CAROUSEL).isError())
    except ModbusException:
        return True


def test_both_identities(client: ModbusSerialClient) -> None:
    assert read_input(client, 0, 4, CAROUSEL) == [0x4857, 0x0C01, 0x0102, 8]
    assert read_input(client, 0, 3, BINLOCK) == [0x4857, 0x0B01, 0x0103]


def test_home_reaches_homed(client: ModbusSerialClient, control: simulator_pb2_grpc.SimulatorStub) -> None:
    del control  # resets the carousel afterwards
    assert not client.write_register(100, 1, device_id=CAROUSEL).isError()
    deadline = time.monotonic() + HOME_DEADLINE_S
    status = read_input(client, 4, 1)[0]
    while status & MOVING or not status & HOMED:  # a Modbus master polls; so does this test
        assert time.monotonic() < deadline, f"STATUS still {status:#06x}"
        status = read_input(client, 4, 1)[0]
    assert status & (HOMED | IN_POSITION) == HOMED | IN_POSITION
    assert read_input(client, 6, 1) == [0]  # CURRENT_SLOT


def test_illegal_address_is_an_exception_reply(client: ModbusSerialClient) -> None:
    response = client.read_input_registers(200, count=1, device_id=CAROUSEL)
    assert response.isError()
    assert response.exception_code == ILLEGAL_DATA_ADDRESS


def test_unplug_then_replug(
    kiosk: dict[str, Any], client: ModbusSerialClient, control: simulator_pb2_grpc.SimulatorStub
) -> None:
    assert read_input(client, 0, 1) == [0x4857]
    assert fault(control, "rs485", "unplug").state == "unplugged"
    assert not os.path.lexists(port(kiosk))
    assert read_fails(client)

    assert fault(control, "rs485", "replug").state == "serving"
    replugged = client_for(port(kiosk))
    try:
        assert read_input(replugged, 0, 4) == [0x4857, 0x0C01, 0x0102, 8]
    finally:
        replugged.close()


def test_garbage_reply_fails_the_crc(client: ModbusSerialClient, control: simulator_pb2_grpc.SimulatorStub) -> None:
    assert fault(control, "rs485", "garbage").state == "serving, garbage x1"
    assert read_fails(client)  # pymodbus drops the reply with the bad CRC and reports no response
    assert read_input(client, 0, 1) == [0x4857]


def test_stall_until_reset(client: ModbusSerialClient, control: simulator_pb2_grpc.SimulatorStub) -> None:
    assert fault(control, "rs485", "stall", seconds="600").state == "stalled"
    assert read_fails(client)
    control.Reset(simulator_pb2.ResetRequest(), timeout=RPC_TIMEOUT_S)
    assert read_input(client, 0, 1) == [0x4857]


def test_status_lists_faults(control: simulator_pb2_grpc.SimulatorStub) -> None:
    status = control.GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
    faults = {device.name: list(device.faults) for device in status.devices}
    assert faults["rs485"] == ["unplug", "replug", "stall", "garbage", "noise"]
    assert "jam" in faults["carousel"]
    assert "open-door" in faults["binlock"]


@pytest.mark.parametrize(
    ("device", "name", "params", "code", "message"),
    [
        ("scanner", "jam", {}, grpc.StatusCode.NOT_FOUND, "no simulated device 'scanner'"),
        ("rs485", "melt", {}, grpc.StatusCode.INVALID_ARGUMENT, "unknown fault 'melt'"),
        ("rs485", "stall", {"seconds": "soon"}, grpc.StatusCode.INVALID_ARGUMENT, "seconds must be"),
        ("rs485", "garbage", {"bytes": "3"}, grpc.StatusCode.INVALID_ARGUMENT, "does not take bytes"),
    ],
)
def test_refused_faults(
    control: simulator_pb2_grpc.SimulatorStub,
    device: str,
    name: str,
    params: dict[str, str],
    code: grpc.StatusCode,
    message: str,
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        fault(control, device, name, **params)
    assert refused.value.code() == code
    assert message in (refused.value.details() or "")


# --- in-process, byte-exact -------------------------------------------------------------------------


class EchoUnit:
    """Unit 5: input register n reads n; no holding registers."""

    unit_id = 5

    def read_input(self, address: int, count: int) -> list[int]:
        return list(range(address, address + count))

    def read_holding(self, address: int, count: int) -> list[int]:
        raise ModbusError(ILLEGAL_DATA_ADDRESS)

    def write_holding(self, address: int, values: list[int]) -> None:
        raise ModbusError(ILLEGAL_DATA_ADDRESS)


REQUEST = rtu.with_crc(bytes.fromhex("05 04 00 02 00 02"))
REPLY = rtu.with_crc(bytes.fromhex("05 04 04 00 02 00 03"))


def open_client(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~(termios.ECHO | termios.ICANON)
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return fd


def receive(fd: int, quiet_s: float = 0.2) -> bytes:
    """Everything that arrives until the line has been quiet for ``quiet_s``."""
    data = b""
    while select.select([fd], [], [], quiet_s)[0]:
        chunk = os.read(fd, 512)
        if not chunk:
            break
        data += chunk
    return data


async def exchange(fd: int, request: bytes) -> bytes:
    os.write(fd, request)
    return await asyncio.to_thread(receive, fd)


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Rs485Line]:
    rs485 = Rs485Line(tmp_path, [EchoUnit()])
    await rs485.start()
    yield rs485
    await rs485.stop()
    assert os.listdir(tmp_path) == []


async def test_reply_in_chunks_and_line_faults_byte_exact(line: Rs485Line) -> None:
    fd = open_client(line.endpoint)
    try:
        os.write(fd, REQUEST[:3])
        assert await exchange(fd, REQUEST[3:]) == REPLY
        await line.fault("garbage", {"count": "1"})
        assert await exchange(fd, REQUEST) == REPLY[:-2] + bytes([REPLY[-2] ^ 0xFF, REPLY[-1] ^ 0xFF])
        await line.fault("noise", {"bytes": "5"})
        noisy = await exchange(fd, REQUEST)
        assert (len(noisy), noisy[5:]) == (5 + len(REPLY), REPLY)
        assert await exchange(fd, rtu.with_crc(bytes.fromhex("05 01 00 00 00 01"))) == rtu.with_crc(b"\x05\x81\x01")
        assert await exchange(fd, rtu.with_crc(bytes.fromhex("06 04 00 00 00 01"))) == b""  # nobody is unit 6
        await line.fault("stall", {"seconds": "60"})
        assert line.state == "stalled"
        assert await exchange(fd, REQUEST) == b""
        await line.reset()
        assert await exchange(fd, b"\xff\x00" + REQUEST) == REPLY  # garbage first, then a silence
    finally:
        os.close(fd)


async def test_unplug_hangs_up_an_open_client(line: Rs485Line) -> None:
    fd = open_client(line.endpoint)
    try:
        await line.fault("unplug", {})
        assert line.state == "unplugged"
        with pytest.raises(OSError, match="Input/output error"):  # the pty was hung up
            os.write(fd, REQUEST)
        assert os.read(fd, 16) == b""  # and reads end of file
    finally:
        os.close(fd)
    await line.fault("replug", {})
    fd = open_client(line.endpoint)
    try:
        assert await exchange(fd, REQUEST) == REPLY
    finally:
        os.close(fd)
