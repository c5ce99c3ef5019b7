"""`hwd probe [phones]` with a fake Phones service, and `hwd sim profiles|plug|unplug|fault phone` with a
fake simulator."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from hwd.cli.main import run
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import common_pb2, kiosk_pb2, kiosk_pb2_grpc, phones_pb2, phones_pb2_grpc
from tests.unit.test_cli import ISO_LOCAL_MS, T0, FakeKiosk, cells, status_of
from tests.unit.test_cli_sim import FakeSimulator

DEADLINE = timestamp_pb2.Timestamp(seconds=1_767_000_060)
AVAILABLE, NEEDS_TRUST = phones_pb2.AVAILABILITY_AVAILABLE, phones_pb2.AVAILABILITY_NEEDS_TRUST


def _ports() -> phones_pb2.ListPortsResponse:
    report = phones_pb2.PhoneReport(
        platform=phones_pb2.PLATFORM_ANDROID,
        model=phones_pb2.ReportField(availability=AVAILABLE, text="Pixel 7", source="adb:getprop ro.product.model"),
        os_version=phones_pb2.ReportField(availability=AVAILABLE, text="14"),
        imei=phones_pb2.ReportField(availability=AVAILABLE, text="358240051111110"),
    )
    return phones_pb2.ListPortsResponse(
        ports=[
            phones_pb2.Port(port="1-1.1", state=phones_pb2.PORT_STATE_READY, reason="OK", since=T0,
                            platform=phones_pb2.PLATFORM_ANDROID, session_id="s1", report=report),
            phones_pb2.Port(port="1-1.2", state=phones_pb2.PORT_STATE_AWAITING_TRUST, reason="OK", since=T0,
                            platform=phones_pb2.PLATFORM_ANDROID, session_id="s2", trust_deadline=DEADLINE,
                            trust_prompt="Allow USB debugging?", recovery_hint="Unlock the phone"),
            phones_pb2.Port(port="1-1.3", state=phones_pb2.PORT_STATE_ABSENT, reason="OK", since=T0),
        ]
    )  # fmt: skip


class FakePhones(phones_pb2_grpc.PhonesServicer):
    def ListPorts(self, request: Any, context: Any) -> phones_pb2.ListPortsResponse:
        return _ports()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeKiosk]:
    """A fake Kiosk and, unless the test removes it, a fake Phones service on tech.sock."""
    kiosk = FakeKiosk()
    kiosk.status = kiosk_pb2.GetStatusResponse(
        daemon=status_of("daemon", common_pb2.DEVICE_STATE_ONLINE),
        devices=[status_of("port:1-1.1", common_pb2.DEVICE_STATE_ONLINE), status_of("printer", 1)],
        version="0.1.0",
        started=T0,
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        server = grpc.server(pool)
        kiosk_pb2_grpc.add_KioskServicer_to_server(kiosk, server)
        phones_pb2_grpc.add_PhonesServicer_to_server(FakePhones(), server)
        server.add_insecure_port(f"unix:{tmp_path / 'tech.sock'}")
        server.start()
        try:
            yield kiosk
        finally:
            server.stop(None).wait()


def test_probe_phones_shows_a_port_table_after_the_port_devices(
    daemon: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--socket-dir", str(tmp_path), "probe", "phones"]) == 0

    _header, devices, ports = capsys.readouterr().out.split("\n\n")
    assert [r["DEVICE"] for r in cells(devices)] == ["daemon", "port:1-1.1"]
    rows = cells(ports)
    assert [(r["PORT"], r["STATE"], r["PLATFORM"]) for r in rows] == [
        ("1-1.1", "READY", "ANDROID"), ("1-1.2", "AWAITING_TRUST", "ANDROID"), ("1-1.3", "ABSENT", "-"),
    ]  # fmt: skip
    assert (rows[0]["MODEL"], rows[0]["OS"], rows[0]["IMEI"]) == ("Pixel 7", "14", "available")
    assert "358240051111110" not in ports, "the table says whether the IMEI was read, not the number"
    assert re.fullmatch(r"Allow USB debugging\? \(until " + ISO_LOCAL_MS + r"\)", rows[1]["HINT"])
    assert (rows[2]["MODEL"], rows[2]["IMEI"]) == ("-", "-")


def test_probe_without_target_includes_the_ports(
    daemon: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--socket-dir", str(tmp_path), "probe"]) == 0

    _header, devices, ports = capsys.readouterr().out.split("\n\n")
    assert [r["DEVICE"] for r in cells(devices)] == ["daemon", "port:1-1.1", "printer"]
    assert [r["PORT"] for r in cells(ports)] == ["1-1.1", "1-1.2", "1-1.3"]


def test_probe_phones_json_has_the_ports_with_their_reports(
    daemon: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--socket-dir", str(tmp_path), "probe", "phones", "--json"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert [d["device"] for d in data["devices"]] == ["port:1-1.1"]
    assert data["ports"][0]["report"]["imei"] == {"availability": "AVAILABILITY_AVAILABLE", "text": "358240051111110"}
    assert data["ports"][1]["trust_prompt"] == "Allow USB debugging?"
    assert data["ports"][2]["state"] == "PORT_STATE_ABSENT"


def test_probe_of_a_daemon_without_phones_shows_the_status_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kiosk = FakeKiosk()
    kiosk.status = kiosk_pb2.GetStatusResponse(daemon=status_of("daemon", common_pb2.DEVICE_STATE_ONLINE))
    with ThreadPoolExecutor(max_workers=2) as pool:
        server = grpc.server(pool)
        kiosk_pb2_grpc.add_KioskServicer_to_server(kiosk, server)
        server.add_insecure_port(f"unix:{tmp_path / 'tech.sock'}")
        server.start()
        try:
            assert run(["--socket-dir", str(tmp_path), "probe", "phones"]) == 0
            assert run(["--socket-dir", str(tmp_path), "probe", "--json"]) == 0
        finally:
            server.stop(None).wait()

    human, machine = capsys.readouterr().out.split("\n{", 1)
    assert len(human.strip().split("\n\n")) == 2  # the header and the device table, no port table
    assert "ports" not in json.loads("{" + machine)


# --- hwd sim --------------------------------------------------------------------------------------


class PhoneSimulator(FakeSimulator):
    """The fake simulator with a pixel-7 profile; plugs and unplugs are recorded."""

    def __init__(self, endpoints_file: Path) -> None:
        super().__init__(endpoints_file)
        self.plugs: list[simulator_pb2.PlugPhoneRequest] = []
        self.unplugs: list[str] = []

    def ListProfiles(self, request: Any, context: Any) -> simulator_pb2.ListProfilesResponse:
        pixel = simulator_pb2.PhoneProfile(
            name="pixel-7", platform="android", manufacturer="Google", model="Pixel 7", os_version="14",
            description="FRP off, no screen lock",
        )  # fmt: skip
        return simulator_pb2.ListProfilesResponse(profiles=[pixel])

    def PlugPhone(self, request: simulator_pb2.PlugPhoneRequest, context: Any) -> simulator_pb2.PlugPhoneResponse:
        self.plugs.append(request)
        if request.profile != "pixel-7":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no profile {request.profile!r}")
        phone = simulator_pb2.SimPhone(
            port=request.port or "1-1.1", profile=request.profile, platform="android", serial="SIMPIXEL7",
            endpoint="tcp:127.0.0.1:40001", state="awaiting trust",
        )  # fmt: skip
        return simulator_pb2.PlugPhoneResponse(phone=phone)

    def UnplugPhone(self, request: simulator_pb2.UnplugPhoneRequest, context: Any) -> simulator_pb2.UnplugPhoneResponse:
        self.unplugs.append(request.port)
        return simulator_pb2.UnplugPhoneResponse()

    def Fault(self, request: simulator_pb2.FaultRequest, context: Any) -> simulator_pb2.FaultResponse:
        self.faults.append((request.device, request.fault, dict(request.params)))
        device = simulator_pb2.SimDevice(name=request.device, state=f"fault: {request.fault}")
        return simulator_pb2.FaultResponse(device=device)


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PhoneSimulator]:
    monkeypatch.delenv("HWD_SIM_ENDPOINTS", raising=False)
    (tmp_path / "sim").mkdir()
    control = tmp_path / "sim" / "control.sock"
    endpoints = tmp_path / "sim" / "endpoints.json"
    endpoints.write_text(json.dumps({"version": 1, "control": f"unix:{control}"}), encoding="utf-8")
    servicer = PhoneSimulator(endpoints)
    with ThreadPoolExecutor(max_workers=2) as pool:
        server = grpc.server(pool)
        simulator_pb2_grpc.add_SimulatorServicer_to_server(servicer, server)
        server.add_insecure_port(f"unix:{control}")
        server.start()
        try:
            yield servicer
        finally:
            server.stop(None).wait()


def hwd_sim(tmp_path: Path, *args: str) -> int:
    return run(["--socket-dir", str(tmp_path), "sim", *args])


def test_sim_profiles_lists_them_as_a_table_or_json(
    sim: PhoneSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd_sim(tmp_path, "profiles") == 0
    assert cells(capsys.readouterr().out) == [
        {"PROFILE": "pixel-7", "PLATFORM": "android", "MANUFACTURER": "Google", "MODEL": "Pixel 7", "OS": "14",
         "DESCRIPTION": "FRP off, no screen lock"},
    ]  # fmt: skip
    assert hwd_sim(tmp_path, "profiles", "--json") == 0
    assert json.loads(capsys.readouterr().out)["profiles"][0]["name"] == "pixel-7"


def test_sim_plug_sends_profile_port_and_trust_answer(
    sim: PhoneSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["plug", "pixel-7", "--port", "1-1.4", "--trust", "ignore", "--trust-delay", "2.5"]
    assert hwd_sim(tmp_path, *argv) == 0

    request = sim.plugs[-1]
    assert (request.profile, request.port, request.trust, request.trust_delay_s) == ("pixel-7", "1-1.4", "ignore", 2.5)
    assert capsys.readouterr().out == (
        "pixel-7 plugged into 1-1.4 (serial SIMPIXEL7, tcp:127.0.0.1:40001): awaiting trust\n"
    )


def test_sim_plug_defaults_to_the_first_free_port_and_accept(sim: PhoneSimulator, tmp_path: Path) -> None:
    assert hwd_sim(tmp_path, "plug", "pixel-7") == 0
    assert (sim.plugs[-1].port, sim.plugs[-1].trust, sim.plugs[-1].trust_delay_s) == ("", "accept", 0.0)


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["plug", "pixel-7", "--trust", "maybe"], 2),
        (["plug", "pixel-7", "--trust-delay", "-1"], 2),
        (["plug", "nokia-3310"], 5),
    ],
)
def test_sim_plug_refuses_bad_arguments_and_unknown_profiles(
    sim: PhoneSimulator, tmp_path: Path, argv: list[str], code: int
) -> None:
    assert hwd_sim(tmp_path, *argv) == code


def test_sim_unplug_names_the_port(sim: PhoneSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hwd_sim(tmp_path, "unplug", "1-1.4") == 0
    assert sim.unplugs == ["1-1.4"]
    assert capsys.readouterr().out == "phone unplugged\n"


def test_sim_fault_phone_goes_to_the_phones_device_with_its_port(
    sim: PhoneSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd_sim(tmp_path, "fault", "phone", "stall", "--port", "1-1.2") == 0
    assert sim.faults == [("phones", "stall", {"port": "1-1.2"})]
    assert capsys.readouterr().out == "phones: fault: stall\n"
