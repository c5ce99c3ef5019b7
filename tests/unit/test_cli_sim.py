"""`hwd sim ...` against a fake Simulator control service, and `hwd config check`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from hwd.cli.main import run
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc


class FakeSimulator(simulator_pb2_grpc.SimulatorServicer):
    """Counts resets and shutdowns; reports two devices; records faults (the printer knows "paper-out")."""

    def __init__(self, endpoints_file: Path) -> None:
        self.endpoints_file = endpoints_file
        self.resets = 0
        self.shutdowns = 0
        self.faults: list[tuple[str, str, dict[str, str]]] = []
        self.receipts = ["/sim/receipts/receipt-0001.png", "/sim/receipts/receipt-0002.png"]
        self.with_printer = True

    def GetStatus(self, request: simulator_pb2.GetStatusRequest, context: Any) -> simulator_pb2.GetStatusResponse:
        printer = simulator_pb2.SimDevice(
            name="printer",
            kind="printer",
            endpoint="tcp:127.0.0.1:9100",
            state="paper out",
            faults=["paper-out", "cover-open"],
            artifacts=self.receipts,
        )
        return simulator_pb2.GetStatusResponse(
            pid=4242,
            started=timestamp_pb2.Timestamp(seconds=1_767_000_000),
            endpoints_file=str(self.endpoints_file),
            resets=self.resets,
            devices=[
                simulator_pb2.SimDevice(name="pixel-7", kind="adb-phone", endpoint="tcp:127.0.0.1:5037", state="idle"),
                *([printer] if self.with_printer else []),
            ],
        )

    def Reset(self, request: simulator_pb2.ResetRequest, context: Any) -> simulator_pb2.ResetResponse:
        self.resets += 1
        return simulator_pb2.ResetResponse()

    def Shutdown(self, request: simulator_pb2.ShutdownRequest, context: Any) -> simulator_pb2.ShutdownResponse:
        self.shutdowns += 1
        return simulator_pb2.ShutdownResponse()

    def Fault(self, request: simulator_pb2.FaultRequest, context: Any) -> simulator_pb2.FaultResponse:
        self.faults.append((request.device, request.fault, dict(request.params)))
        if request.device != "printer":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no simulated device {request.device!r}")
        if request.fault != "paper-out":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown fault {request.fault!r}")
        device = simulator_pb2.SimDevice(
            name="printer", kind="printer", endpoint="tcp:127.0.0.1:9100", state="paper out", faults=["paper-out"]
        )
        return simulator_pb2.FaultResponse(device=device)


@pytest.fixture
def simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSimulator]:
    """A fake simulator on SOCKET_DIR/sim/control.sock, published in SOCKET_DIR/sim/endpoints.json."""
    monkeypatch.delenv("HWD_SIM_ENDPOINTS", raising=False)
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    control = sim_dir / "control.sock"
    endpoints = sim_dir / "endpoints.json"
    document = {"version": 1, "pid": 4242, "control": f"unix:{control}", "devices": {}}
    endpoints.write_text(json.dumps(document), encoding="utf-8")
    servicer = FakeSimulator(endpoints)
    with ThreadPoolExecutor(max_workers=2) as pool:
        server = grpc.server(pool)
        simulator_pb2_grpc.add_SimulatorServicer_to_server(servicer, server)
        server.add_insecure_port(f"unix:{control}")
        server.start()
        try:
            yield servicer
        finally:
            server.stop(None).wait()


def test_sim_status_finds_the_simulator_through_the_endpoints_file(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim", "status"]) == 0

    header, devices = capsys.readouterr().out.split("\n\n")
    assert "pid:" in header
    assert "4242" in header
    assert f"endpoints file: {simulator.endpoints_file}" in header
    assert devices.splitlines() == [
        "NAME     KIND       ENDPOINT            STATE      FAULTS",
        "pixel-7  adb-phone  tcp:127.0.0.1:5037  idle       -",
        "printer  printer    tcp:127.0.0.1:9100  paper out  paper-out,cover-open",
    ]


def test_sim_endpoints_option_and_environment(
    simulator: FakeSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = elsewhere / "endpoints.json"
    simulator.endpoints_file.rename(moved)

    assert run(["--socket-dir", str(tmp_path), "sim", "reset", "--endpoints", str(moved)]) == 0
    monkeypatch.setenv("HWD_SIM_ENDPOINTS", str(moved))
    assert run(["--socket-dir", str(tmp_path), "sim", "--json", "status"]) == 0

    assert simulator.resets == 1
    out = capsys.readouterr().out
    status = json.loads(out[out.index("{") :])
    assert status["resets"] == 1
    assert status["devices"][0]["endpoint"] == "tcp:127.0.0.1:5037"


def test_sim_shutdown_json_prints_the_empty_response(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim", "shutdown", "--json"]) == 0

    assert json.loads(capsys.readouterr().out) == {}
    assert simulator.shutdowns == 1


def test_sim_without_endpoints_file_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HWD_SIM_ENDPOINTS", raising=False)

    assert run(["--socket-dir", str(tmp_path), "sim", "status"]) == 3

    path = tmp_path / "sim" / "endpoints.json"
    assert capsys.readouterr().err == (
        f"hwd: no simulated kiosk found at {path}; start one with `make run` or `hwd serve --simulated`\n"
    )


@pytest.mark.parametrize("content", ["{not json", '{"version": 1}', "[]"])
def test_sim_with_malformed_endpoints_file_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(content, encoding="utf-8")

    assert run(["sim", "status", "--endpoints", str(endpoints)]) == 3

    err = capsys.readouterr().err
    assert err.startswith(f"hwd: no simulated kiosk found at {endpoints} (")
    assert err.endswith("start one with `make run` or `hwd serve --simulated`\n")


def test_sim_whose_control_socket_is_gone_is_unreachable(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = {"version": 1, "control": f"unix:{tmp_path / 'gone.sock'}"}
    simulator.endpoints_file.write_text(json.dumps(document), encoding="utf-8")

    assert run(["--socket-dir", str(tmp_path), "sim", "status"]) == 3

    assert f"cannot reach the simulator at {tmp_path / 'gone.sock'}: no socket" in capsys.readouterr().err


def test_sim_fault_sends_device_fault_and_params_and_prints_the_new_state(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--socket-dir", str(tmp_path), "sim", "fault", "printer", "paper-out", "after=2", "note=a=b"]
    assert run(argv) == 0

    assert simulator.faults == [("printer", "paper-out", {"after": "2", "note": "a=b"})]
    assert capsys.readouterr().out == "printer: paper out\n"


def test_sim_fault_json_prints_the_response(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim", "fault", "--json", "printer", "paper-out"]) == 0

    assert json.loads(capsys.readouterr().out) == {
        "device": {
            "name": "printer",
            "kind": "printer",
            "endpoint": "tcp:127.0.0.1:9100",
            "state": "paper out",
            "faults": ["paper-out"],
        }
    }
    assert simulator.faults == [("printer", "paper-out", {})]


@pytest.mark.parametrize(
    ("device", "fault", "message"),
    [("scanner", "paper-out", "NOT_FOUND: no simulated device 'scanner'"), ("printer", "jam", "unknown fault 'jam'")],
)
def test_sim_fault_refused_is_a_bad_request(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str, fault: str, message: str
) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim", "fault", device, fault]) == 5

    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


@pytest.mark.parametrize("params", [["seconds"], ["=5"], ["count=1", "count=2"]])
def test_sim_fault_with_malformed_params_is_a_usage_error(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], params: list[str]
) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim", "fault", "printer", "paper-out", *params]) == 2

    assert "fault parameter" in capsys.readouterr().err
    assert simulator.faults == []


def test_sim_receipts_lists_the_printer_artifacts(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim", "receipts"]) == 0

    assert capsys.readouterr().out == "/sim/receipts/receipt-0001.png\n/sim/receipts/receipt-0002.png\n"


def test_sim_receipts_json(simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim", "receipts", "--json"]) == 0

    assert json.loads(capsys.readouterr().out) == {"receipts": simulator.receipts}


def test_sim_receipts_when_none_was_printed(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator.receipts = []

    assert run(["--socket-dir", str(tmp_path), "sim", "receipts"]) == 0
    assert run(["--socket-dir", str(tmp_path), "sim", "--json", "receipts"]) == 0

    assert capsys.readouterr().out == '{\n  "receipts": []\n}\n'


def test_sim_receipts_without_a_printer_is_a_bad_request(
    simulator: FakeSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator.with_printer = False

    assert run(["--socket-dir", str(tmp_path), "sim", "receipts"]) == 5

    assert capsys.readouterr().err == "hwd: the simulated kiosk has no printer\n"


def test_sim_without_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim"]) == 2


# --- config check ----------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HWD_SOCKET_DIR", "HWD_STATE_DIR", "HWD_GRPC__MAX_CONCURRENT_RPCS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_env")
def test_config_check_accepts_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "hwd.toml"
    good.write_text('[daemon]\nlog_level = "DEBUG"\n\n[grpc]\nmax_concurrent_rpcs = 64\n', encoding="utf-8")

    assert run(["config", "check", str(good)]) == 0

    assert capsys.readouterr().out == f"{good}: ok\n"


@pytest.mark.usefixtures("clean_env")
def test_config_check_names_file_and_key_of_a_bad_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "hwd.toml"
    bad.write_text("[grpc]\nmax_concurrent_rpcs = 1\n", encoding="utf-8")

    assert run(["config", "check", str(bad)]) == 9

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"hwd: {bad}: grpc.max_concurrent_rpcs: ")


@pytest.mark.usefixtures("clean_env")
def test_config_check_of_a_missing_file_is_invalid_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["config", "check", str(tmp_path / "none.toml"), "--json"]) == 9

    assert json.loads(capsys.readouterr().out)["ok"] is False
