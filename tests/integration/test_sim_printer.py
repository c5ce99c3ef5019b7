"""The simulated printer in the simulator process, over a raw TCP socket, with faults from the control service."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, simulator_fixtures

DLE_EOT = b"\x10\x04"
CUT = b"\x1bd\x06\x1dV\x00"
TEAR_ROWS = 12


kiosk, control = simulator_fixtures("printer")


@pytest.fixture
def printer(kiosk: dict[str, Any]) -> Iterator[socket.socket]:
    """A raw TCP connection to the printer."""
    device = kiosk["devices"]["printer"]
    assert device["kind"] == "escpos-printer"
    _, host, port = device["endpoint"].split(":")
    with socket.create_connection((host, int(port)), timeout=RPC_TIMEOUT_S) as sock:
        yield sock


def query(sock: socket.socket, n: int) -> int:
    """DLE EOT n; the reply also proves every byte sent before it was printed."""
    sock.sendall(DLE_EOT + bytes([n]))
    reply = sock.recv(16)
    assert len(reply) == 1
    return reply[0]


def artifacts(stub: simulator_pb2_grpc.SimulatorStub) -> list[str]:
    status = stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
    return list(next(device for device in status.devices if device.name == "printer").artifacts)


def fault(stub: simulator_pb2_grpc.SimulatorStub, name: str, **params: str) -> simulator_pb2.SimDevice:
    request = simulator_pb2.FaultRequest(device="printer", fault=name, params=params)
    device: simulator_pb2.SimDevice = stub.Fault(request, timeout=RPC_TIMEOUT_S).device
    return device


def test_a_receipt_printed_over_tcp_is_saved(
    kiosk: dict[str, Any], control: simulator_pb2_grpc.SimulatorStub, printer: socket.socket
) -> None:
    before = artifacts(control)
    printer.sendall(b"\x1b@\x1ba\x01\x1b!\x30VOUCHER\n\x1b!\x00\x1bt\x1325,00 \xd5\n" + CUT)

    assert query(printer, 4) == 0x12
    after = artifacts(control)
    assert len(after) == len(before) + 1
    path = Path(after[-1])
    assert path.parent == Path(kiosk["control"].removeprefix("unix:")).parent / "receipts"
    with Image.open(path) as image:
        assert image.width == 576


def test_paper_out_mid_job_shows_in_status_and_tears_the_receipt(
    control: simulator_pb2_grpc.SimulatorStub, printer: socket.socket
) -> None:
    before = artifacts(control)
    printer.sendall(b"first line\n")
    assert query(printer, 4) == 0x12
    device = fault(control, "paper-out", after_mm="5")  # 40 more dot rows
    assert "paper near end" in device.state

    printer.sendall(b"more\n" * 20 + CUT)

    assert query(printer, 4) == 0x7E  # near end and paper end
    assert query(printer, 1) & 0x08  # offline
    assert query(printer, 2) & 0x20  # stopped by the paper end
    torn = artifacts(control)
    assert len(torn) == len(before) + 1
    with Image.open(torn[-1]) as image:
        assert image.height == 30 + 40 + TEAR_ROWS  # the first line, the last 5 mm, the tear
        tear = image.convert("L").crop((0, image.height - TEAR_ROWS, 576, image.height))
        assert tear.getextrema()[0] == 0  # the tear mark is drawn across the bottom

    printer.sendall(b"lost\n" + CUT)
    assert query(printer, 4) == 0x7E
    assert artifacts(control) == torn
    fault(control, "load-paper")
    assert query(printer, 4) == 0x12


def test_cover_open_sets_bit_2_of_the_offline_cause(
    control: simulator_pb2_grpc.SimulatorStub, printer: socket.socket
) -> None:
    assert query(printer, 2) == 0x12
    assert fault(control, "cover-open").state.startswith("cover open")

    assert query(printer, 2) == 0x16
    assert query(printer, 1) == 0x1A
    fault(control, "cover-close")
    assert query(printer, 2) == 0x12


def test_a_refused_fault_is_invalid_argument(control: simulator_pb2_grpc.SimulatorStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        fault(control, "paper-out", after_mm="lots")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "after_mm" in str(caught.value.details())
