"""iPhones on the kiosk's USB ports, from usbmuxd's Listen stream, each mapped to its physical port.

usbmuxd owns the iPhone's USB interface and says which devices it reaches (by UDID) as they come
and go; udev says on which port each Apple device sits. A locator joins the two: the USB device of
vendor 05ac whose serial is the UDID without its dash, or whose bus and address match usbmuxd's
LocationID (``(bus << 16) | address`` on Linux). Tests inject their own locator.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

import pyudev  # type: ignore[import-untyped]

from hwd.discovery.rules import APPLE, port_of
from hwd.discovery.usbmux_wire import (
    HEADER,
    Attached,
    Detached,
    Garbage,
    Message,
    body_length,
    decode,
    device_change,
    listen_request,
    result_code,
)
from hwd.errors import DeviceUnavailable
from hwd.model.phones import Platform, PortEvent

log = logging.getLogger(__name__)

SYSTEM_SOCKET = "/var/run/usbmuxd"
TIMEOUT_S = 5.0  # connecting, the Listen reply, the rest of a frame once its header came, locating a port
HINT = "Check that usbmuxd runs (systemctl status usbmuxd) and that the daemon may open its socket."

#: Finds the port path of the iPhone with this UDID and LocationID; None when no USB device matches.
Locator = Callable[[str, int], Awaitable[str | None]]


def parse_address(address: str) -> tuple[str, int] | Path:
    """``"HOST:PORT"`` as a TCP address; ``"UNIX:/path"`` or ``"/path"`` as a socket path.

    :raises ValueError: for anything else.
    """
    if address.startswith("UNIX:"):
        address = address[len("UNIX:") :]
    if address.startswith("/"):
        return Path(address)
    host, sep, port = address.rpartition(":")
    if sep and host and port.isdigit() and port.isascii() and 0 < int(port) < 65536:
        return host.strip("[]"), int(port)
    raise ValueError(f"{address!r} is not a usbmuxd address such as /var/run/usbmuxd or 127.0.0.1:27015")


class UsbmuxWatcher:
    """iPhones as usbmuxd sees them, on the ports udev places them.

    :param address: usbmuxd's socket path or ``HOST:PORT`` (see :func:`parse_address`).
    :param locator: maps a UDID and LocationID to a port path (default: :func:`udev_port`).
    :param timeout_s: deadline of connecting, of each reply, and of locating one phone.
    """

    def __init__(self, address: str = SYSTEM_SOCKET, locator: Locator | None = None, *,
                 timeout_s: float = TIMEOUT_S) -> None:  # fmt: skip
        self._address = address
        self._locator = locator or udev_port
        self._timeout_s = timeout_s
        self._tags = itertools.count(1)

    def events(self) -> AsyncGenerator[PortEvent, None]:
        """Every iPhone attached now, then each arrival and removal. A removal carries only the port.

        :raises DeviceUnavailable: when usbmuxd cannot be reached, refuses Listen, sends garbage or
            closes the stream (a supervisor restarts it, and the new stream lists the phones afresh).
        """
        return self._stream()

    async def _stream(self) -> AsyncGenerator[PortEvent, None]:
        reader, writer = await self._connect()
        try:
            writer.write(listen_request(next(self._tags)))
            try:
                async with asyncio.timeout(self._timeout_s):
                    await writer.drain()
                    reply = await self._frame(reader)
            except TimeoutError:
                raise self._broken(f"usbmuxd did not answer Listen within {self._timeout_s:g} s") from None
            if (code := result_code(reply)) != 0:
                raise self._broken(f"usbmuxd refused Listen: {code}")
            ports: dict[int, str] = {}  # usbmuxd's DeviceID -> the port announced for it
            while True:
                event = await self._next(reader, ports)
                if event is not None:
                    yield event
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            where = parse_address(self._address)
            async with asyncio.timeout(self._timeout_s):
                if isinstance(where, Path):
                    return await asyncio.open_unix_connection(where)
                return await asyncio.open_connection(*where)
        except (OSError, ValueError, TimeoutError) as exc:
            raise self._broken(f"cannot reach usbmuxd at {self._address}: {exc or type(exc).__name__}") from None

    async def _next(self, reader: asyncio.StreamReader, ports: dict[int, str]) -> PortEvent | None:
        """The event of the next Listen message, or None when it changes nothing on a port."""
        change = device_change(await self._frame(reader, idle=True))
        if isinstance(change, Garbage):
            raise self._broken(f"usbmuxd sent {change.why}")
        if isinstance(change, Detached):
            port = ports.pop(change.device_id, None)
            return PortEvent(port, attached=False) if port is not None else None
        if change is None:
            return None
        return await self._attached(change, ports)

    async def _attached(self, change: Attached, ports: dict[int, str]) -> PortEvent | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                port = await self._locator(change.udid, change.location)
        except (TimeoutError, OSError) as exc:
            log.warning("usbmux: locating %s failed: %s", change.udid, exc or type(exc).__name__)
            port = None
        if port is None:
            log.warning("usbmux: no USB port found for %s (LocationID %#x); it is not shown", change.udid,
                        change.location)  # fmt: skip
            return None
        ports[change.device_id] = port
        return PortEvent(port, True, Platform.IOS, change.udid, f"usbmux:{change.udid}",
                         description=f"Apple iPhone ({APPLE}:{change.product_id:04x})")  # fmt: skip

    async def _frame(self, reader: asyncio.StreamReader, *, idle: bool = False) -> Message:
        """The next frame's plist. With ``idle`` the header may take for ever (Listen waits for
        plugs) and the body must come within the deadline; without it the caller bounds the whole frame."""
        try:
            header = await reader.readexactly(HEADER.size)
            length = body_length(header)
            if isinstance(length, Garbage):
                raise self._broken(f"usbmuxd sent {length.why}")
            async with asyncio.timeout(self._timeout_s if idle else None):
                body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise self._broken("usbmuxd closed the stream") from None
        except TimeoutError:  # an OSError too: told apart first
            raise self._broken(f"usbmuxd did not answer within {self._timeout_s:g} s") from None
        except OSError as exc:
            raise self._broken(f"the usbmuxd stream broke: {exc}") from None
        message = decode(body)
        if isinstance(message, Garbage):
            raise self._broken(f"usbmuxd sent {message.why}")
        return message

    def _broken(self, detail: str) -> DeviceUnavailable:
        return DeviceUnavailable(detail, device="usbmuxd", hint=HINT)


async def udev_port(udid: str, location: int) -> str | None:
    """The port path of the Apple USB device with this UDID or LocationID, read from udev.

    :returns: e.g. ``"1-4.2"``, or None when no Apple device matches.
    :raises OSError: when udev cannot be read.
    """
    return await asyncio.to_thread(_udev_port, udid, location)


def _udev_port(udid: str, location: int) -> str | None:
    # sysfs attributes, not udev properties: the kernel sets them before usbmuxd can see the device,
    # while udev's rules may still be running.
    context = pyudev.Context()
    wanted = udid.replace("-", "").lower()
    by_location = None
    for device in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
        port = port_of(device.sys_name)
        if port is None or _attribute(device, "idVendor") != APPLE:
            continue
        if _attribute(device, "serial") == wanted:
            return port
        bus, address = _attribute(device, "busnum"), _attribute(device, "devnum")
        if location and bus.isdigit() and address.isdigit() and (int(bus) << 16 | int(address)) == location:
            by_location = port
    return by_location


def _attribute(device: pyudev.Device, name: str) -> str:
    """A sysfs attribute as lower-case text, "" when absent or unreadable."""
    try:
        value = device.attributes.get(name)
    except (OSError, UnicodeDecodeError):
        return ""
    return value.decode("ascii", "replace").strip().lower() if isinstance(value, bytes) else ""
