"""Simulated iPhones as seen by two iOS hosts nobody here wrote: Debian's libimobiledevice tools and pymobiledevice3.

Both find the simulated usbmuxd through ``127.0.0.1:PORT`` (libimobiledevice through env
``USBMUXD_SOCKET_ADDRESS``, pymobiledevice3 through ``usbmux_address=``), pair through the
phone's trust dialog, then read values over a TLS session and the diagnostics_relay service.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_sim_iphones import UDID, Stub, plug, usbmux_address, workdir
from tests.integration.test_simulator_process import simulator_fixtures

pytestmark = pytest.mark.conformance

TOOL_TIMEOUT_S = 30.0

kiosk, control = simulator_fixtures("libimobiledevice")


@dataclass
class Tools:
    """Debian's libimobiledevice tools pointed at the simulated usbmuxd."""

    env: dict[str, str]

    def __call__(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool, "-u", UDID, *args], env=self.env, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )

    def info(self, *args: str) -> dict[str, str]:
        """``ideviceinfo`` output as key: value pairs (top-level lines)."""
        done = self("ideviceinfo", *args)
        assert done.returncode == 0, done.stderr
        pairs = (line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line and not line.startswith(" "))
        return dict(pair for pair in pairs if len(pair) == 2)


@pytest.fixture
def tools(kiosk: dict[str, Any], tmp_path: Path) -> Tools:
    for tool in ("ideviceinfo", "idevicepair", "idevicediagnostics"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (package libimobiledevice-utils)")
    host, port = usbmux_address(kiosk)
    # Its own HOME, so nothing of this machine's pairing state is read or written.
    return Tools({**os.environ, "HOME": str(tmp_path), "USBMUXD_SOCKET_ADDRESS": f"{host}:{port}"})


def record_path(document: dict[str, Any]) -> Path:
    return workdir(document) / "usbmuxd" / "pair_records" / f"{UDID}.plist"


def test_ideviceinfo_unpaired_shows_only_the_public_subset(kiosk: dict[str, Any], control: Stub, tools: Tools) -> None:
    plug(control)
    info = tools.info("-s")
    assert info["UniqueDeviceID"] == UDID
    assert info["ProductType"] == "iPhone14,5"
    assert info["ProductVersion"] == "17.5.1"
    assert "SerialNumber" not in info
    assert "InternationalMobileEquipmentIdentity" not in info
    assert not record_path(kiosk).exists()


def test_pair_validate_and_read_everything(kiosk: dict[str, Any], control: Stub, tools: Tools) -> None:
    plug(control)
    paired = tools("idevicepair", "pair")
    assert paired.returncode == 0, paired.stdout + paired.stderr
    assert "SUCCESS" in paired.stdout
    record = plistlib.loads(record_path(kiosk).read_bytes())
    assert record["HostID"]
    assert record["DeviceCertificate"]
    validated = tools("idevicepair", "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr

    info = tools.info()
    assert info["SerialNumber"] == "K7W2H9QX4M"
    assert info["InternationalMobileEquipmentIdentity"] == "354432110456784"
    assert info["ActivationState"] == "Activated"
    battery = tools.info("-q", "com.apple.mobile.battery")
    assert battery["BatteryCurrentCapacity"] == "76"
    assert battery["BatteryIsCharging"] == "false"

    diagnostics = tools("idevicediagnostics", "ioregentry", "AppleSmartBattery")
    assert diagnostics.returncode == 0, diagnostics.stderr
    entry = plistlib.loads(diagnostics.stdout.encode())["IORegistry"]
    assert entry["CycleCount"] == 412
    assert entry["DesignCapacity"] == 3227


def test_pair_refused_by_the_customer(kiosk: dict[str, Any], control: Stub, tools: Tools) -> None:
    plug(control, trust="refuse")
    paired = tools("idevicepair", "pair")
    assert paired.returncode != 0
    assert "denied" in (paired.stdout + paired.stderr).lower()
    assert not record_path(kiosk).exists()


def test_pair_while_the_dialog_is_unanswered(kiosk: dict[str, Any], control: Stub, tools: Tools) -> None:
    plug(control, trust="ignore")
    paired = tools("idevicepair", "pair")
    assert paired.returncode != 0
    assert "trust dialog" in (paired.stdout + paired.stderr).lower()
    assert not record_path(kiosk).exists()


async def test_pymobiledevice3_pairs_and_reads(
    kiosk: dict[str, Any], control: Stub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymobiledevice3.lockdown import create_using_usbmux
    from pymobiledevice3.services.diagnostics import DiagnosticsService

    plug(control)
    host, port = usbmux_address(kiosk)
    # pymobiledevice3 saves the new pair record through a usbmuxd found by env, not usbmux_address.
    monkeypatch.setenv("USBMUXD_SOCKET_ADDRESS", f"{host}:{port}")
    lockdown = await create_using_usbmux(
        serial=UDID, usbmux_address=f"{host}:{port}", pairing_records_cache_folder=tmp_path, autopair=True
    )
    try:
        values = lockdown.all_values
        assert values["SerialNumber"] == "K7W2H9QX4M"
        assert values["InternationalMobileEquipmentIdentity2"] == "354432110456867"
        battery = await lockdown.get_value("com.apple.mobile.battery")
        assert battery["BatteryCurrentCapacity"] == 76
        async with DiagnosticsService(lockdown) as diagnostics:
            entry = await diagnostics.ioregistry(ioclass="AppleSmartBattery")
        assert entry is not None
        assert entry["CycleCount"] == 412
    finally:
        await lockdown.close()
    assert record_path(kiosk).exists()  # pymobiledevice3 hands its record to usbmuxd too
