"""One simulated iPhone plugged into a kiosk port, reached through the simulated usbmuxd.

Its lockdownd answers on device port 62078; each StartService opens a one-connection service
port. Hosts reach both through usbmuxd Connect, whose socket the phone then serves directly.
A USB reset (after trust, or on demand) cuts every connection and makes the phone detach and
attach again under a new usbmuxd DeviceID; the hosts it trusts stay trusted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from simulators.ios.diagnostics import SERVICE as DIAGNOSTICS
from simulators.ios.diagnostics import serve_diagnostics
from simulators.ios.faults import IphoneFaults
from simulators.ios.lockdownd import LOCKDOWN_PORT, LockdownConnection
from simulators.ios.pairing import TrustDialog, TrustedHost
from simulators.ios.spec import IphoneProfile
from simulators.ios.tls import PhoneKey, PlainLink, device_key

log = logging.getLogger(__name__)

#: The first device port handed to a started service.
FIRST_SERVICE_PORT = 49152
SERVICES = (DIAGNOSTICS,)


class Mux(Protocol):
    """The usbmuxd a phone attaches to (see :class:`simulators.ios.usbmuxd.UsbmuxdSim`)."""

    def attach(self, phone: Any) -> int:
        """Announce ``phone``; returns its new DeviceID."""
        ...

    def detach(self, device_id: int) -> None:
        """Announce that the phone with ``device_id`` is gone."""
        ...


def location_id(port: str) -> int:
    """A usbmuxd LocationID for a port path such as ``1-1.3``: bus in the top byte, then one nibble per hop."""
    bus, _, path = port.partition("-")
    value = int(bus) << 24 if bus.isdigit() else 0
    for shift, hop in zip((20, 16, 12, 8, 4), path.split("."), strict=False):
        value |= (int(hop) & 0xF if hop.isdigit() else 0) << shift
    return value


class IPhone:
    """A simulated iPhone on one port. The constructor does no I/O; :meth:`start` is the plug."""

    def __init__(
        self,
        profile: IphoneProfile,
        port: str,
        mux: Mux,
        dialog: TrustDialog,
        on_usb_change: Callable[[bool], None],
        reset_after_trust: bool = False,
    ) -> None:
        """:param port: the USB port path, e.g. ``"1-1.3"``.

        :param mux: the usbmuxd it appears in.
        :param dialog: its trust dialog (the customer's answer and delay).
        :param on_usb_change: told False when a USB reset detaches it and True when it is back.
        :param reset_after_trust: every trust of a new computer is followed by a USB reset.
        """
        self.profile = profile
        self.port = port
        self.dialog = dialog
        self.faults = IphoneFaults()
        self._key: PhoneKey | None = None
        self.device_id = 0
        self.resets = 0
        self._mux = mux
        self._on_usb_change = on_usb_change
        self._reset_after_trust = reset_after_trust
        self._contexts: dict[str, tuple[bytes, ssl.SSLContext]] = {}
        self._services: dict[int, TrustedHost] = {}
        self._next_service_port = FIRST_SERVICE_PORT
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._chores: set[asyncio.Task[None]] = set()

    @property
    def serial(self) -> str:
        """The UDID."""
        return self.profile.serial

    @property
    def key(self) -> PhoneKey:
        """The phone's own RSA key.

        :raises RuntimeError: the phone is not started.
        """
        if self._key is None:
            raise RuntimeError(f"iPhone on {self.port} is not started")
        return self._key

    @property
    def location_id(self) -> int:
        """Its usbmuxd LocationID, from the port path."""
        return location_id(self.port)

    @property
    def endpoint(self) -> str:
        """``usbmux:UDID``: hosts find it in the simulated usbmuxd by its UDID."""
        return f"usbmux:{self.serial}"

    @property
    def state(self) -> str:
        """E.g. ``"awaiting trust"``, ``"connected, trusted"``, ``"idle, fault: stall"``."""
        state = "awaiting trust" if self.dialog.open else "connected" if self._connections else "idle"
        if self.dialog.hosts:
            state += ", trusted"
        faults = self.faults.active()
        return f"{state}, fault: {', '.join(faults)}" if faults else state

    async def start(self) -> None:
        """Make its key and attach to usbmuxd."""
        self._key = await asyncio.to_thread(device_key, self.serial)
        self.device_id = self._mux.attach(self)
        log.info("iPhone %s (%s) on %s as usbmuxd device %d", self.serial, self.profile.name, self.port, self.device_id)

    async def stop(self) -> None:
        """Unplug: detach from usbmuxd and cut every connection now."""
        for chore in list(self._chores):
            chore.cancel()
        if self._chores:
            await asyncio.wait(list(self._chores))
        self._mux.detach(self.device_id)
        self.dialog.close()
        await self._cut()
        log.info("iPhone %s unplugged from %s", self.serial, self.port)

    def fault(self, name: str, params: Mapping[str, str]) -> None:
        """Inject a fault (see :class:`simulators.ios.faults.IphoneFaults`); ``usb-reset`` on a
        phone that trusts a computer already resets it now.

        :raises ValueError: an unknown fault or a bad parameter.
        """
        self.faults.apply(name, params)
        if name == "usb-reset" and self.dialog.hosts:
            self.faults.take_reset()
            self._chore(self.usb_reset())

    def accepts(self, device_port: int) -> bool:
        """Whether something listens on ``device_port`` (lockdownd or a started service)."""
        return device_port == LOCKDOWN_PORT or device_port in self._services

    async def serve(self, device_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve a usbmuxd-connected socket on ``device_port`` until it ends or the phone goes away."""
        plain = PlainLink(reader, writer)
        host = self._services.pop(device_port, None)
        if host is not None:
            context = await self.context_for(host)
            work: Coroutine[Any, Any, None] = serve_diagnostics(plain, context, self.profile, self.faults)
        else:
            work = LockdownConnection(self, plain).serve()
        task = asyncio.create_task(work, name=f"iphone-{self.port}-{device_port}")
        self._connections[task] = writer
        try:
            # Its own task, so a cut (unplug, reset) never cancels usbmuxd's handler task.
            await asyncio.wait([task])
        finally:
            if not task.done():
                writer.close()
                task.cancel()
            self._connections.pop(task, None)

    async def context_for(self, host: TrustedHost) -> ssl.SSLContext:
        """The TLS server context for sessions with ``host`` (made once per device certificate)."""
        cached = self._contexts.get(host.host_id)
        if cached is None or cached[0] != host.device_certificate:
            context = await asyncio.to_thread(self.key.server_context, host.device_certificate)
            cached = self._contexts[host.host_id] = (host.device_certificate, context)
        return cached[1]

    def open_service(self, name: str, host: TrustedHost) -> int | None:
        """Open a one-connection port for service ``name``; None if the phone has no such service."""
        if name not in SERVICES:
            return None
        port = self._next_service_port
        self._next_service_port = FIRST_SERVICE_PORT + (port + 1 - FIRST_SERVICE_PORT) % 4096
        self._services[port] = host
        return port

    def trusted(self, host: TrustedHost) -> None:
        """The customer trusted ``host``; a reset armed for that moment happens now."""
        if self.faults.take_reset() or self._reset_after_trust:
            self._chore(self.usb_reset())

    async def usb_reset(self) -> None:
        """Drop off USB and come back: Detached, every connection cut, then Attached with a new DeviceID."""
        self._mux.detach(self.device_id)
        self._on_usb_change(False)
        await self._cut()
        self.resets += 1
        self.device_id = self._mux.attach(self)
        log.info("iPhone %s reset on %s: now usbmuxd device %d", self.serial, self.port, self.device_id)
        self._on_usb_change(True)

    def _chore(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"iphone-{self.port}-chore")
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _cut(self) -> None:
        self._services.clear()
        tasks = list(self._connections)
        for task in tasks:
            self._connections[task].close()
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
