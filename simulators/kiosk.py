"""The set of simulated devices that makes up one kiosk."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from simulators.adb.ports import PhonePorts, Profile
from simulators.android.profiles import load_profiles as load_android_profiles
from simulators.binlock import BinLockSim
from simulators.camera.sim import CameraSim
from simulators.carousel import CarouselSim
from simulators.device import DeviceView, SimDevice
from simulators.errors import SimDeviceError
from simulators.ios.profiles import load_profiles as load_ios_profiles
from simulators.ios.usbmuxd import UsbmuxdSim
from simulators.line import CLIENT_LINK, Rs485Line
from simulators.printer import PrinterSim

log = logging.getLogger(__name__)

#: How long one device may take to start, stop or reset before it is reported as failed.
DEVICE_DEADLINE_S = 10.0


def default_devices(workdir: Path) -> list[SimDevice]:
    """Build the devices of the standard simulated kiosk; no I/O happens here.

    A device family adds its devices to the returned list; they may keep files or pty links
    under ``workdir``. The carousel (unit 1) and bin lock (unit 2) controllers share the RS-485
    line ``rs485``, whose client end is the pty link ``workdir/rs485``. The controllers come
    first, so they are stopped after the line that serves them. The receipt printer listens on
    TCP and on the pty link ``workdir/printer-tty`` and saves receipts under ``workdir/receipts``.
    The phone ports ``phones`` hold the simulated phones plugged over the control service; the
    iPhones among them appear in the simulated ``usbmuxd`` (pair records under ``workdir/usbmuxd``),
    which comes first so that it is stopped after the phones.
    The inspection camera ``camera`` serves MJPEG over HTTP and writes a clip under ``workdir/camera``.

    :param workdir: the simulator's private directory (``--dir``).
    :returns: the devices, not yet started.
    """
    port = workdir / CLIENT_LINK
    carousel = CarouselSim(f"modbus-rtu:{port}?unit=1")
    binlock = BinLockSim(f"modbus-rtu:{port}?unit=2")
    line = Rs485Line(workdir, [carousel, binlock])
    usbmuxd = UsbmuxdSim(workdir)
    phones = PhonePorts(load_phone_profiles, usbmuxd=usbmuxd)
    return [carousel, binlock, line, PrinterSim(workdir), usbmuxd, phones, CameraSim(workdir)]


def load_phone_profiles() -> dict[str, Profile]:
    """Every Android and iPhone profile, by name; blocking (reads the profile files)."""
    profiles: dict[str, Profile] = {}
    profiles.update(load_android_profiles())
    profiles.update(load_ios_profiles())
    return profiles


class UnknownDevice(LookupError):
    """No simulated device has the name asked for."""


class SimKiosk:
    """Owns the simulated devices: starts, stops and resets them all, and reports them."""

    def __init__(self, devices: Iterable[SimDevice]) -> None:
        """:param devices: the devices, not started; their names must be unique.

        :raises ValueError: two devices share a name.
        """
        self._devices = list(devices)
        names = [device.name for device in self._devices]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate simulated device names: {', '.join(duplicates)}")
        self._started: list[SimDevice] = []
        self._resets = 0
        self._lock = asyncio.Lock()

    @property
    def resets(self) -> int:
        """How many times :meth:`reset` was called."""
        return self._resets

    def device(self, name: str) -> SimDevice:
        """The device called ``name``.

        :raises UnknownDevice: no device is called ``name``.
        """
        device = next((device for device in self._devices if device.name == name), None)
        if device is None:
            known = ", ".join(device.name for device in self._devices) or "none"
            raise UnknownDevice(f"no simulated device {name!r} (devices: {known})")
        return device

    def devices(self) -> list[DeviceView]:
        """A snapshot of every device, in registration order."""
        return [DeviceView.of(device) for device in self._devices]

    async def start(self) -> None:
        """Start every device in order.

        :raises SimDeviceError: a device failed or timed out; the devices started before it are
            stopped again, so nothing is left running.
        """
        async with self._lock:
            for device in self._devices:
                try:
                    async with asyncio.timeout(DEVICE_DEADLINE_S):
                        await device.start()
                except Exception as exc:
                    log.exception("simulated device %s (%s) failed to start", device.name, device.kind)
                    await self._stop_started()
                    raise SimDeviceError(f"device {device.name!r} failed to start: {exc!r}") from exc
                self._started.append(device)
                log.info("simulated %s %s at %s", device.kind, device.name, device.endpoint)

    async def stop(self) -> None:
        """Stop every started device, newest first. Never raises: failures are logged."""
        async with self._lock:
            await self._stop_started()

    async def reset(self) -> None:
        """Reset every started device and count the call; one failure does not skip the others.

        :raises SimDeviceError: at least one device failed or timed out.
        """
        async with self._lock:
            self._resets += 1
            failed: list[str] = []
            for device in self._started:
                try:
                    async with asyncio.timeout(DEVICE_DEADLINE_S):
                        await device.reset()
                except Exception:
                    log.exception("simulated device %s failed to reset", device.name)
                    failed.append(device.name)
            if failed:
                raise SimDeviceError(f"devices failed to reset: {', '.join(failed)}")

    async def fault(self, name: str, fault: str, params: dict[str, str]) -> DeviceView:
        """Inject ``fault`` with ``params`` into device ``name``.

        :returns: the device's snapshot afterwards.
        :raises UnknownDevice: no device is called ``name``.
        :raises ValueError: the device refuses the fault or its parameters; the message says why.
        :raises SimDeviceError: the device is not running, failed or timed out.
        """
        device = self.device(name)
        async with self._lock:
            if device not in self._started:
                raise SimDeviceError(f"device {name!r} is not running")
            try:
                async with asyncio.timeout(DEVICE_DEADLINE_S):
                    await device.fault(fault, params)
            except ValueError:
                raise
            except Exception as exc:
                log.exception("simulated device %s failed on fault %s", name, fault)
                raise SimDeviceError(f"device {name!r} failed on fault {fault!r}: {exc!r}") from exc
        log.info("fault %s %s on simulated device %s: %s", fault, params, name, device.state)
        return DeviceView.of(device)

    async def _stop_started(self) -> None:
        while self._started:
            device = self._started.pop()
            try:
                async with asyncio.timeout(DEVICE_DEADLINE_S):
                    await device.stop()
            except Exception:
                log.exception("simulated device %s failed to stop", device.name)
