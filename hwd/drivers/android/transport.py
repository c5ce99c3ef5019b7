"""ADB sessions to phones through adb-shell: TCP for simulated phones, USB for real ones.

adb-shell's quirks shape this module (see FIELD-NOTES.md): on a connection the peer closed,
its TCP reads return nothing and it spins until ``read_timeout_s`` without yielding to the
event loop, so the TCP transport here raises at end of stream instead; it sends header and
payload in two writes, so TCP_NODELAY is set; it believes any payload length a header claims,
so a length over what was offered is refused before reading. Every failure becomes a
:class:`~hwd.errors.PhoneError` with a port reason code.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adb_shell.adb_device_async import AdbDeviceAsync  # type: ignore[import-untyped]
from adb_shell.constants import MAX_ADB_DATA  # type: ignore[import-untyped]
from adb_shell.transport.tcp_transport_async import TcpTransportAsync  # type: ignore[import-untyped]

from hwd.drivers.android.failures import Oversized, PeerClosed, phone_error
from hwd.drivers.android.keys import load_signer
from hwd.drivers.android.usb import UsbAdbSession
from hwd.errors import PhoneError

log = logging.getLogger(__name__)

#: Largest output one shell command may return (a full getprop + dumpsys batch is ~30 KiB).
MAX_OUTPUT_BYTES = 1024 * 1024
#: Called (or awaited) once when the phone shows the "Allow USB debugging?" prompt for the kiosk's key.
PromptCallback = Callable[[], Awaitable[None]] | Callable[[], None]


class _TcpTransport(TcpTransportAsync):  # type: ignore[misc]
    """adb-shell's TCP transport, with TCP_NODELAY, an end-of-stream error and a payload cap."""

    async def connect(self, transport_timeout_s: float) -> None:
        await super().connect(transport_timeout_s)
        sock = self._writer.get_extra_info("socket")
        if sock is not None:  # header and payload go in two writes: Nagle + delayed ACK cost ~40-90 ms
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def bulk_read(self, numbytes: int, transport_timeout_s: float) -> bytes:
        if numbytes > MAX_ADB_DATA:
            raise Oversized(f"the phone announced a {numbytes}-byte payload; at most {MAX_ADB_DATA} was offered")
        if self._reader is None:
            raise PeerClosed("the connection is closed")
        data: bytes = await super().bulk_read(numbytes, transport_timeout_s)
        if not data:
            raise PeerClosed("the phone closed the connection")
        return data


class TcpAdbSession:
    """An authorised ADB connection over TCP (a simulated phone, or a phone in TCP/IP mode).

    :param device: the connected adb-shell device.
    :param timeout_s: the longest one shell command may take.
    :param stall_s: the longest the phone may stay silent.
    :param max_output_bytes: the largest output one command may return.
    """

    def __init__(self, device: Any, timeout_s: float, stall_s: float, max_output_bytes: int) -> None:
        self._device = device
        self._timeout_s = timeout_s
        self._stall_s = stall_s
        self._max_output = max_output_bytes

    async def shell(self, command: str) -> bytes:
        """Runs a shell command line (shell protocol v1: stdout and stderr interleaved).

        :returns: its output.
        :raises hwd.errors.PhoneError: ``PHONE_TOO_SLOW`` past ``timeout_s``,
            ``PHONE_OUTPUT_TOO_LARGE`` past the size cap, or the transport's failure code.
        """
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._collect(command)
        except TimeoutError as exc:
            raise PhoneError(f"a shell command took longer than {self._timeout_s:g} s", code="PHONE_TOO_SLOW") from exc
        except Exception as exc:
            raise phone_error(exc) from exc

    async def _collect(self, command: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        stream = self._device.streaming_shell(
            command, transport_timeout_s=self._stall_s, read_timeout_s=self._stall_s, decode=False
        )
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > self._max_output:
                    raise PhoneError(
                        f"a shell command printed more than {self._max_output} bytes", code="PHONE_OUTPUT_TOO_LARGE"
                    )
                chunks.append(chunk)
        finally:
            await stream.aclose()
        return b"".join(chunks)

    async def authenticate(self, signer: Any, prompt: _Prompt, trust_timeout_s: float) -> None:
        """Connects and authenticates; on any failure (or cancellation) the socket is closed.

        :raises hwd.errors.PhoneError: see :func:`open_session`.
        """
        try:
            async with asyncio.timeout(self._timeout_s + trust_timeout_s):
                await self._device.connect(
                    rsa_keys=[signer],
                    transport_timeout_s=self._stall_s,
                    auth_timeout_s=trust_timeout_s,
                    read_timeout_s=self._stall_s,
                    auth_callback=prompt.shown,
                )
            await prompt.finish()
        except BaseException as exc:
            await prompt.cancel()
            await self.close()
            if isinstance(exc, TimeoutError):
                code = "TRUST_TIMEOUT" if prompt.called else "PHONE_TOO_SLOW"
                raise PhoneError(f"connecting to the phone took longer than allowed ({code})", code=code) from exc
            if isinstance(exc, Exception):
                raise phone_error(exc, trusting=prompt.called) from exc
            raise

    async def close(self) -> None:
        """Closes the connection; the socket is released even if the phone is gone."""
        try:
            await self._device.close()
        except Exception as exc:  # a broken transport may fail to close cleanly; the socket is gone anyway
            log.debug("closing an adb connection: %r", exc)


async def open_session(
    endpoint: str,
    key_dir: Path,
    *,
    on_prompt: PromptCallback,
    trust_timeout_s: float,
    timeout_s: float,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
) -> TcpAdbSession | UsbAdbSession:
    """Connects to a phone and authenticates with the kiosk's key.

    :param endpoint: ``tcp:HOST:PORT`` or ``usb:BUS:ADDRESS`` (or ``usb:SERIAL``).
    :param key_dir: where the kiosk's ADB key pair lives (made on first use).
    :param on_prompt: called once if the phone shows "Allow USB debugging?" for this key.
    :param trust_timeout_s: how long the customer has to tap "Allow".
    :param timeout_s: the longest the connect or one shell command may take; the phone may be
        silent for half of it.
    :returns: an open session; close it.
    :raises hwd.errors.PhoneError: TRUST_REFUSED, TRUST_TIMEOUT, PHONE_STALLED, PHONE_DISCONNECTED,
        PHONE_PROTOCOL_ERROR, PHONE_TOO_SLOW, ADB_KEY_UNAVAILABLE, or ``INVALID_ENDPOINT``.
    """
    signer = await load_signer(key_dir)
    kind, _, where = endpoint.partition(":")
    if kind == "usb" and where:
        return await UsbAdbSession.open(where, signer, on_prompt, trust_timeout_s, timeout_s, max_output_bytes)
    host, _, port = where.rpartition(":")
    if kind != "tcp" or not host or not (port.isascii() and port.isdigit()):
        raise PhoneError(f"not an ADB endpoint: {endpoint!r}", code="INVALID_ENDPOINT")
    session = TcpAdbSession(
        AdbDeviceAsync(_TcpTransport(host, int(port)), default_transport_timeout_s=timeout_s / 2),
        timeout_s,
        timeout_s / 2,
        max_output_bytes,
    )
    await session.authenticate(signer, _Prompt(on_prompt), trust_timeout_s)
    return session


class _Prompt:
    """Calls ``on_prompt`` when adb-shell sends the public key (its synchronous auth_callback)."""

    def __init__(self, on_prompt: PromptCallback) -> None:
        self._on_prompt = on_prompt
        self._task: asyncio.Task[None] | None = None
        self.called = False

    def shown(self, _io_manager: object) -> None:
        self.called = True
        result = self._on_prompt()
        if inspect.isawaitable(result):
            self._task = asyncio.ensure_future(result)

    async def finish(self) -> None:
        if self._task is not None:
            await self._task

    async def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
