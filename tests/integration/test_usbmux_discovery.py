"""The usbmux watcher's udev locator under umockdev (an iPhone 13 on port 1-4.4 beside a Pixel and a
keyboard), and the watcher against the simulated kiosk's usbmuxd: iPhones plugged and unplugged there
become port events."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hwd.discovery.usbmux import UsbmuxWatcher
from hwd.model.phones import Platform, PortEvent
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2
from tests.integration.test_phones_api import GUARD_S, simulated_kiosk
from tests.integration.test_udev_discovery import IPHONE, KEYBOARD, PIXEL, UDID

LOCATE = (
    "import asyncio, sys; from hwd.discovery.usbmux import udev_port; "
    "print(asyncio.run(udev_port(sys.argv[1], int(sys.argv[2]))))"
)


def locate(udid: str, location: int) -> str:
    if shutil.which("umockdev-run") is None:
        pytest.skip("umockdev is not installed (apt-get install umockdev)")
    devices = [arg for path in (KEYBOARD, PIXEL, IPHONE) for arg in ("-d", str(path))]
    command = ["umockdev-run", *devices, "--", sys.executable, "-c", LOCATE, udid, str(location)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=GUARD_S, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_iphone_is_found_on_its_port_by_its_udid() -> None:
    assert locate(UDID, 0) == "1-4.4"


def test_an_iphone_is_found_by_usbmuxd_location_when_its_serial_differs() -> None:
    assert locate("not-the-serial", 1 << 16 | 7) == "1-4.4"  # bus 1, address 7


def test_a_udid_on_no_apple_device_is_not_found() -> None:
    assert locate("00008030-000A1B2C3D4E5F60", 1 << 16 | 5) == "None"  # 1:5 is the Pixel, not Apple


async def test_the_watcher_follows_the_simulated_usbmuxd(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as kiosk:
        assert kiosk.daemon.simulator is not None
        address = kiosk.daemon.simulator.endpoints["devices"]["usbmuxd"]["endpoint"].removeprefix("tcp:")
        plugged = await kiosk.plug("iphone-13", "1-1.3")
        ports = {plugged.serial: "1-1.3"}

        async def by_udid(udid: str, location: int) -> str | None:
            return ports.get(udid)

        stream = UsbmuxWatcher(address, by_udid).events()
        try:
            async with asyncio.timeout(GUARD_S):
                first = await anext(stream)
                await kiosk.sim.UnplugPhone(simulator_pb2.UnplugPhoneRequest(port="1-1.3"), timeout=10)
                second = await anext(stream)
        finally:
            await stream.aclose()
    assert (first.port, first.platform, first.serial, first.endpoint) == (
        "1-1.3",
        Platform.IOS,
        plugged.serial,
        f"usbmux:{plugged.serial}",
    )
    assert second == PortEvent("1-1.3", attached=False)
