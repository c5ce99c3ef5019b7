"""Simulated phones as seen by two ADB hosts nobody here wrote: Debian's ``adb`` and adb-shell.

``adb`` (protocol 0x01000001: no checksums, shell v2, exit codes) runs with its own HOME (so
its own fresh key, hence the "Allow USB debugging?" prompt) and its own server port, and its
server is killed afterwards. adb-shell speaks protocol 0x01000000, shell v1, and checks every
payload checksum.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from adb_shell.adb_device_async import AdbDeviceTcpAsync
from adb_shell.auth.sign_pythonrsa import PythonRSASigner
from adb_shell.exceptions import AdbTimeoutError

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2
from tests.integration.test_sim_phones import Stub, make_signer, plug
from tests.integration.test_simulator_process import simulator_fixtures

pytestmark = pytest.mark.conformance

ADB = "/usr/bin/adb"
ADB_TIMEOUT_S = 30.0
#: The customer reads the prompt this long: enough for ``adb devices`` to see "unauthorized".
TRUST_DELAY_S = 5.0

kiosk, control = simulator_fixtures("adb")


@dataclass
class Adb:
    """Debian's adb client with a private HOME and server port."""

    env: dict[str, str]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ADB, *args], env=self.env, capture_output=True, text=True, timeout=ADB_TIMEOUT_S, check=False
        )

    def state(self, serial: str) -> str:
        """The device's line in ``adb devices -l``, without the serial; empty when not listed."""
        for line in self("devices", "-l").stdout.splitlines():
            if line.startswith(serial + " ") or line.startswith(serial + "\t"):
                return line.removeprefix(serial).strip()
        return ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def adb(tmp_path: Path) -> Iterator[Adb]:
    if not Path(ADB).exists():
        pytest.skip("Debian's adb is not installed (package adb)")
    home = tmp_path / "home"
    home.mkdir()
    client = Adb({**os.environ, "HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(free_port())})
    yield client
    client("kill-server")


def test_adb_connects_through_the_prompt_and_runs_commands(control: Stub, adb: Adb) -> None:
    phone = plug(control, trust="accept", delay=TRUST_DELAY_S)
    serial = phone.endpoint.removeprefix("tcp:")
    adb("connect", serial)

    assert adb.state(serial).startswith("unauthorized")
    assert adb("-s", serial, "wait-for-device").returncode == 0
    assert adb.state(serial).startswith("device product:panther model:Pixel_7 device:panther")

    model = adb("-s", serial, "shell", "getprop", "ro.product.model")
    assert (model.returncode, model.stdout) == (0, "Pixel 7\n")
    assert adb("-s", serial, "shell", "exit 3").returncode == 3
    unknown = adb("-s", serial, "shell", "nosuchtool")
    assert unknown.returncode == 127
    assert unknown.stderr == "/system/bin/sh: nosuchtool: inaccessible or not found\n"


def test_adb_loses_the_phone_on_unplug(control: Stub, adb: Adb) -> None:
    phone = plug(control)
    serial = phone.endpoint.removeprefix("tcp:")
    adb("connect", serial)
    assert adb("-s", serial, "wait-for-device").returncode == 0
    control.UnplugPhone(simulator_pb2.UnplugPhoneRequest(port=phone.port), timeout=ADB_TIMEOUT_S)
    gone = adb("-s", serial, "shell", "getprop", "ro.product.model")
    assert gone.returncode != 0
    assert not adb.state(serial).startswith("device")


@pytest.fixture
def signer(tmp_path: Path) -> PythonRSASigner:
    return make_signer(tmp_path)


def test_adb_shell_authorizes_through_the_prompt(control: Stub, signer: PythonRSASigner) -> None:
    phone = plug(control, trust="accept", delay=0.2)
    _, host, port = phone.endpoint.split(":")

    async def session() -> tuple[str, str]:
        device = AdbDeviceTcpAsync(host, int(port), default_transport_timeout_s=ADB_TIMEOUT_S)
        try:
            assert await device.connect(rsa_keys=[signer], auth_timeout_s=ADB_TIMEOUT_S)
            model = await device.shell("getprop ro.product.model", read_timeout_s=ADB_TIMEOUT_S)
            unknown = await device.shell("nosuchtool", read_timeout_s=ADB_TIMEOUT_S)
        finally:
            await device.close()
        return str(model), str(unknown)

    model, unknown = asyncio.run(session())
    assert model == "Pixel 7\n"
    assert unknown == "/system/bin/sh: nosuchtool: inaccessible or not found\n"  # shell v1: stderr mixed in


def test_adb_shell_is_turned_away_by_a_refusing_customer(control: Stub, signer: PythonRSASigner) -> None:
    phone = plug(control, trust="refuse")
    _, host, port = phone.endpoint.split(":")

    async def session() -> None:
        device = AdbDeviceTcpAsync(host, int(port), default_transport_timeout_s=ADB_TIMEOUT_S)
        try:
            # adb-shell reads a closed connection until its read timeout, so keep it short.
            await device.connect(rsa_keys=[signer], auth_timeout_s=ADB_TIMEOUT_S, read_timeout_s=1.0)
        finally:
            await device.close()

    with pytest.raises(AdbTimeoutError, match="read 0 of 24 bytes"):
        asyncio.run(session())
