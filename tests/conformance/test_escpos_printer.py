"""The simulated printer as seen by python-escpos (Network and Serial), and its receipts read back by OpenCV.

python-escpos and OpenCV share no code with the simulator: python-escpos makes the bytes and
reads the status, OpenCV's QRCodeDetector reads the QR codes from the saved PNG. The golden
voucher pins the renderer's output pixel for pixel; ``HWD_UPDATE_GOLDEN=1`` rewrites it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from escpos.printer import Dummy, Network, Serial  # type: ignore[import-untyped]
from PIL import Image

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from simulators.escpos import EscPosParser
from simulators.receipt import Receipt
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, simulator_fixtures

pytestmark = pytest.mark.conformance

GOLDEN = Path(__file__).parent / "golden" / "voucher.png"
PROFILE = "TM-T88V"
SERIAL_TIMEOUT_S = 0.5


kiosk, control = simulator_fixtures("escpos")


def network(kiosk: dict[str, Any]) -> Any:
    _, host, port = kiosk["devices"]["printer"]["endpoint"].split(":")
    return Network(host, int(port), timeout=RPC_TIMEOUT_S, profile=PROFILE)


def serial(kiosk: dict[str, Any]) -> Any:
    tty = Path(kiosk["control"].removeprefix("unix:")).parent / "printer-tty"
    return Serial(devfile=str(tty), baudrate=19200, timeout=SERIAL_TIMEOUT_S, profile=PROFILE)


CONNECTIONS: dict[str, Callable[[dict[str, Any]], Any]] = {"network": network, "serial": serial}


@pytest.fixture(params=sorted(CONNECTIONS))
def printer(request: pytest.FixtureRequest, kiosk: dict[str, Any], control: Any) -> Iterator[Any]:
    """An open python-escpos printer on the simulator, by TCP or by its serial port."""
    device = CONNECTIONS[request.param](kiosk)
    device.open()
    yield device
    device.close()


def artifacts(stub: simulator_pb2_grpc.SimulatorStub) -> list[str]:
    status = stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
    return list(next(device for device in status.devices if device.name == "printer").artifacts)


def fault(stub: simulator_pb2_grpc.SimulatorStub, name: str, **params: str) -> None:
    stub.Fault(simulator_pb2.FaultRequest(device="printer", fault=name, params=params), timeout=RPC_TIMEOUT_S)


def read_qr(path: str) -> str:
    image = cv2.imread(path)
    assert image is not None
    text, _points, _straight = cv2.QRCodeDetector().detectAndDecode(image)
    return str(text)


@pytest.mark.parametrize("native", [False, True])
def test_printed_qr_code_reads_back(printer: Any, control: Any, native: bool) -> None:
    data = f"https://kiosk.example/v/KIOSK-2026-0042?native={native}"
    printer.text("Voucher\n")
    printer.qr(data, native=native, size=4)
    printer.barcode("123456789012", "EAN13", width=2)
    printer.cut()

    assert printer.is_online()  # the reply comes after the cut was processed
    receipt = artifacts(control)[-1]
    assert read_qr(receipt) == data
    found, decoded, _kinds = cv2.barcode.BarcodeDetector().detectAndDecodeWithType(cv2.imread(receipt))[:3]
    assert found
    assert "1234567890128" in decoded


@pytest.mark.parametrize(
    ("faults", "online", "paper"),
    [
        ([], True, 2),
        ([("paper-out", {"after_mm": "500"})], True, 1),
        ([("paper-out", {})], False, 0),
        ([("cover-open", {})], False, 2),
        ([("offline", {})], False, 2),
        ([("paper-out", {}), ("load-paper", {})], True, 2),
    ],
)
def test_is_online_and_paper_status(
    printer: Any, control: Any, faults: list[tuple[str, dict[str, str]]], online: bool, paper: int
) -> None:
    for name, params in faults:
        fault(control, name, **params)

    assert printer.is_online() is online
    assert printer.paper_status() == paper


def voucher_stream() -> bytes:
    """The reference voucher, as python-escpos sends it."""
    p = Dummy(profile=PROFILE)
    p.hw("INIT")
    p.set(align="center", bold=True, double_width=True, double_height=True)
    p.text("BON D'ACHAT\n")
    p.set(normal_textsize=True, align="center")
    p.charcode("CP858")
    p.text("Reprise de votre téléphone\n")
    p.text("-" * 48 + "\n")
    p.set(align="left", underline=1)
    p.text("Code :\n")
    p.set(align="center", bold=True, double_width=True)
    p.text("KIOSK-2026-0042\n")
    p.set(normal_textsize=True, align="right", double_height=True)
    p.text("Montant : 25,00 €\n")
    p.set(normal_textsize=True)
    p.barcode("{BKIOSK-2026-0042", "CODE128", function_type="B", width=2, height=80)
    p.ln()
    p.qr("KIOSK-2026-0042", native=True, size=5)
    p.set(align="center", font="b")
    p.text("Valable 30 jours, à présenter en caisse.\n")
    p.cut()
    data: bytes = p.output
    return data


def render(data: bytes) -> Image.Image:
    receipt = Receipt()
    for op in EscPosParser().feed(data):
        receipt.apply(op)
    image = receipt.finish()
    assert image is not None
    return image


def test_golden_voucher() -> None:
    image = render(voucher_stream())
    if os.environ.get("HWD_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        image.save(GOLDEN)
    with Image.open(GOLDEN) as golden:
        same = golden.mode == image.mode and golden.size == image.size and golden.tobytes() == image.tobytes()
    if not same:
        actual = GOLDEN.with_name("voucher.actual.png")
        image.save(actual)
        pytest.fail(f"the voucher differs from {GOLDEN}; see {actual} (HWD_UPDATE_GOLDEN=1 accepts it)")
    array = np.array(image.convert("L"))
    text, _points, _straight = cv2.QRCodeDetector().detectAndDecode(cv2.cvtColor(array, cv2.COLOR_GRAY2BGR))
    assert text == "KIOSK-2026-0042"
