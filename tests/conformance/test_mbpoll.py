"""The simulated RS-485 line as seen by Debian's ``mbpoll``, a Modbus master built on libmodbus.

``mbpoll`` shares no code with the simulator. Each call runs it once (``-1``) on ``DIR/rs485``
with the line's settings (RTU, 115200 8N1) and 0-based register references (``-0``), then the
values it prints are compared with the register maps in docs/hardware/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, SimProcess

pytestmark = pytest.mark.conformance

CAROUSEL, BINLOCK = 1, 2
INPUT, HOLDING = "3", "4"
MBPOLL_TIMEOUT_S = 10.0
SETTLE_DEADLINE_S = 10.0
VALUE_LINE = re.compile(r"^\[(\d+)\]:\s+(\d+)", re.MULTILINE)
# Carousel STATUS bits and the bin lock's (docs/hardware/carousel.md, binlock.md).
HOMED, IN_POSITION = 0x01, 0x04
DOOR_CLOSED, UNLOCK_OUTPUT, RELOCK_PENDING = 0x02, 0x04, 0x20


def _mbpoll() -> str:
    path = shutil.which("mbpoll")
    if path is None:
        pytest.skip("mbpoll is not installed (Debian package mbpoll)")
    return path


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _mbpoll()
    sim = SimProcess(tmp_path_factory.mktemp("mbpoll") / "sim")
    document = sim.ready()
    yield document
    sim.proc.terminate()
    rc, _ = sim.finish()
    assert rc == 0, sim.stderr


@pytest.fixture
def device(kiosk: dict[str, Any]) -> Iterator[str]:
    """The line's client pty; every simulated device is reset after the test."""
    yield kiosk["devices"]["rs485"]["endpoint"]
    with grpc.insecure_channel(kiosk["control"]) as channel:
        simulator_pb2_grpc.SimulatorStub(channel).Reset(simulator_pb2.ResetRequest(), timeout=RPC_TIMEOUT_S)


def mbpoll(device: str, unit: int, table: str, ref: int, *rest: str) -> subprocess.CompletedProcess[str]:
    """``mbpoll -m rtu -a UNIT -b 115200 -P none -t TABLE -0 -r REF -1 [REST...] DEVICE`` once."""
    command = [_mbpoll(), "-m", "rtu", "-a", str(unit), "-b", "115200", "-P", "none", "-t", table, "-0"]
    command += ["-r", str(ref), "-1", *rest]
    return subprocess.run(command, capture_output=True, text=True, timeout=MBPOLL_TIMEOUT_S, check=False)


def read(device: str, unit: int, table: str, ref: int, count: int) -> dict[int, int]:
    """The registers ``ref .. ref+count-1`` as mbpoll prints them (``[ref]: value``)."""
    run = mbpoll(device, unit, table, ref, "-c", str(count), device)
    assert run.returncode == 0, run.stdout + run.stderr
    values = {int(ref): int(value) for ref, value in VALUE_LINE.findall(run.stdout)}
    assert list(values) == list(range(ref, ref + count)), run.stdout
    return values


def write(device: str, unit: int, ref: int, *values: int) -> None:
    """Write holding registers from ``ref`` (one value: function 06; more: function 16)."""
    run = mbpoll(device, unit, HOLDING, ref, device, *map(str, values))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Written {len(values)} references." in run.stdout


def wait_for(device: str, unit: int, ref: int, wanted: int) -> None:
    """Poll input register ``ref`` with mbpoll until it reads ``wanted``, as a master would."""
    deadline = time.monotonic() + SETTLE_DEADLINE_S
    value = read(device, unit, INPUT, ref, 1)[ref]
    while value != wanted:
        assert time.monotonic() < deadline, f"unit {unit} input register {ref} still {value}, not {wanted}"
        value = read(device, unit, INPUT, ref, 1)[ref]


def test_identities(device: str) -> None:
    assert read(device, CAROUSEL, INPUT, 0, 4) == {0: 0x4857, 1: 0x0C01, 2: 0x0102, 3: 8}
    assert read(device, BINLOCK, INPUT, 0, 3) == {0: 0x4857, 1: 0x0B01, 2: 0x0103}


def test_home_then_move_with_function_16(device: str) -> None:
    write(device, CAROUSEL, 100, 1)  # COMMAND = HOME
    wait_for(device, CAROUSEL, 4, HOMED | IN_POSITION)  # STATUS
    assert read(device, CAROUSEL, INPUT, 6, 4) == {6: 0, 7: 0xFFFF, 8: 1, 9: 0}

    write(device, CAROUSEL, 100, 2, 3)  # COMMAND = MOVE, ARGUMENT = slot 3
    wait_for(device, CAROUSEL, 6, 3)  # CURRENT_SLOT
    assert read(device, CAROUSEL, INPUT, 4, 6) == {4: HOMED | IN_POSITION, 5: 0, 6: 3, 7: 3, 8: 2, 9: 0}
    assert read(device, CAROUSEL, HOLDING, 100, 4) == {100: 2, 101: 3, 102: 1500, 103: 150}


def test_binlock_unlock(device: str) -> None:
    assert read(device, BINLOCK, INPUT, 3, 1) == {3: 0x01 | DOOR_CLOSED}  # bolt extended, door closed
    write(device, BINLOCK, 100, 1)  # COMMAND = UNLOCK, ARGUMENT 0: relock after RELOCK_DEFAULT_S
    wait_for(device, BINLOCK, 3, DOOR_CLOSED | UNLOCK_OUTPUT | RELOCK_PENDING)  # the bolt is in
    values = read(device, BINLOCK, INPUT, 5, 2)
    assert values[5] == 1  # COMMAND_COUNTER
    assert 0 < values[6] <= 30  # RELOCK_REMAINING_S counts down from the default 30 s
    assert read(device, BINLOCK, HOLDING, 100, 3) == {100: 1, 101: 0, 102: 30}


@pytest.mark.parametrize(("unit", "table", "ref"), [(CAROUSEL, INPUT, 200), (BINLOCK, HOLDING, 103)])
def test_illegal_address(device: str, unit: int, table: str, ref: int) -> None:
    run = mbpoll(device, unit, table, ref, "-c", "1", device)
    assert run.returncode != 0
    assert "Illegal data address" in run.stdout + run.stderr
