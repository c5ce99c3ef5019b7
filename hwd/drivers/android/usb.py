"""ADB over USB for real phones: adb-shell's blocking USB device, owned by one worker thread.

adb-shell has no async USB transport (FIELD-NOTES.md), so every call on a device runs in that
device's own single thread, with libusb timeouts so no call outlives its deadline for long.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from adb_shell.adb_device import AdbDevice, AdbDeviceUsb  # type: ignore[import-untyped]
from adb_shell.transport.usb_transport import UsbTransport  # type: ignore[import-untyped]

from hwd.drivers.android.failures import phone_error
from hwd.errors import PhoneError

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _find(where: str, timeout_s: float) -> Any:
    """The adb-shell USB device for ``BUS:ADDRESS`` (as udev numbers them) or a USB serial."""
    bus, _, address = where.partition(":")
    if not (bus.isascii() and address.isascii() and bus.isdigit() and address.isdigit()):
        return AdbDeviceUsb(serial=where, default_transport_timeout_s=timeout_s)
    for transport in UsbTransport.find_all_adb_devices(default_transport_timeout_s=timeout_s):
        device = transport._device  # adb-shell matches only port paths and serials; bus:address needs libusb's device
        if (device.getBusNumber(), device.getDeviceAddress()) == (int(bus), int(address)):
            return AdbDevice(transport, default_transport_timeout_s=timeout_s)
    raise PhoneError(f"no ADB interface at USB {bus}:{address}", code="PHONE_DISCONNECTED")


def _collect(device: Any, command: str, stall_s: float, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in device.streaming_shell(command, transport_timeout_s=stall_s, read_timeout_s=stall_s, decode=False):
        size += len(chunk)
        if size > cap:
            raise PhoneError(f"a shell command printed more than {cap} bytes", code="PHONE_OUTPUT_TOO_LARGE")
        chunks.append(chunk)
    return b"".join(chunks)


class UsbAdbSession:
    """An authorised ADB connection to a phone on USB; :meth:`open` makes one."""

    def __init__(self, pool: ThreadPoolExecutor, device: Any, timeout_s: float, max_output_bytes: int) -> None:
        self._pool = pool
        self._device = device
        self._timeout_s = timeout_s
        self._max_output = max_output_bytes

    @classmethod
    async def open(
        cls,
        where: str,
        signer: Any,
        on_prompt: Callable[[], Awaitable[None]] | Callable[[], None],
        trust_timeout_s: float,
        timeout_s: float,
        max_output_bytes: int,
    ) -> UsbAdbSession:
        """Finds the phone, connects and authenticates (see :func:`hwd.drivers.android.transport.open_session`)."""
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adb-usb")
        prompted = asyncio.Event()

        def shown(_io: object) -> None:  # adb-shell calls this in the worker thread
            loop.call_soon_threadsafe(prompted.set)

        def connect() -> Any:
            device = _find(where, timeout_s / 2)
            try:
                device.connect(
                    rsa_keys=[signer],
                    transport_timeout_s=timeout_s / 2,
                    auth_timeout_s=trust_timeout_s,
                    read_timeout_s=timeout_s / 2,
                    auth_callback=shown,
                )
            except BaseException:
                _quiet_close(device)  # a refused or broken handshake may leave the interface claimed
                raise
            return device

        session = cls(pool, None, timeout_s, max_output_bytes)
        connecting = pool.submit(connect)
        watcher = asyncio.ensure_future(_prompt_when(prompted, on_prompt))
        try:
            session._device = await session._call(
                asyncio.wrap_future(connecting, loop=loop), timeout_s + trust_timeout_s
            )
        except BaseException as exc:
            # Past the deadline (or cancelled) the connect still runs in the thread; the pool's one
            # worker closes what it returns once it ends, so no USB handle outlives the session.
            pool.submit(_close_connected, connecting)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await session.close()
            if isinstance(exc, Exception):
                raise phone_error(exc, trusting=prompted.is_set()) from exc
            raise
        if prompted.is_set():
            await watcher  # the caller's prompt handling finishes before the session is used
        else:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        return session

    async def _call(self, future: Awaitable[_T], deadline_s: float) -> _T:
        try:
            async with asyncio.timeout(deadline_s):
                return await future
        except TimeoutError as exc:
            raise PhoneError(f"the phone did not finish within {deadline_s:g} s", code="PHONE_TOO_SLOW") from exc

    async def shell(self, command: str) -> bytes:
        """Runs a shell command line; see :meth:`hwd.drivers.android.transport.TcpAdbSession.shell`."""
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._pool, _collect, self._device, command, self._timeout_s / 2, self._max_output)
        try:
            return await self._call(job, self._timeout_s)
        except Exception as exc:
            raise phone_error(exc) from exc

    async def close(self) -> None:
        """Closes the device in its thread (after any call still running) and lets the thread end."""
        device, self._device = self._device, None
        if device is not None:
            self._pool.submit(_quiet_close, device)
        self._pool.shutdown(wait=False)


def _quiet_close(device: Any) -> None:
    try:
        device.close()
    except Exception as exc:  # libusb errors on a vanished phone; the handle is released either way
        log.debug("closing a USB adb device: %r", exc)


def _close_connected(connecting: Future[Any]) -> None:
    """Closes the device ``connecting`` gave, if it gave one (run after it, on the same worker)."""
    if not connecting.cancelled() and connecting.exception() is None:
        _quiet_close(connecting.result())


async def _prompt_when(prompted: asyncio.Event, on_prompt: Callable[[], Awaitable[None]] | Callable[[], None]) -> None:
    await prompted.wait()
    result = on_prompt()
    if inspect.isawaitable(result):
        await result
