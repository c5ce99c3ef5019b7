"""The kiosk's RS-485 line: one Modbus RTU master shared by the controllers on it.

See docs/hardware/modbus-line.md. The line is half-duplex, so one transaction runs at a time;
each attempt has its own deadline, and timeouts and corrupted replies are retried with
exponential backoff. A USB-RS485 adapter that disappears is closed and reopened on the next
call, so an unplugged and replugged adapter never needs a daemon restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from hwd.errors import DeviceNotReady, DeviceUnavailable, HardwareFault, HwdError

log = logging.getLogger(__name__)

LINE_HINT = "check the RS-485 adapter and cable"

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
DEVICE_FAILURE = 4
DEVICE_BUSY = 6

COUNTER_MODULO = 0x10000


class _NoReply(Exception):
    """One attempt failed: no valid reply in time (nothing, or corrupted frames) or no port."""


def decode_firmware(value: int) -> str:
    """Reads a FIRMWARE register (both reference controllers use major << 8 | minor).

    :param value: the register.
    :returns: "major.minor", e.g. "1.2".
    """
    return f"{value >> 8}.{value & 0xFF}"


def exception_error(code: int, what: str, device: str) -> HwdError:
    """Translates a Modbus exception response into the hwd error a caller can act on.

    :param code: the exception code of the response.
    :param what: the request, for the message (e.g. "write 100 on unit 1").
    :param device: the port, for the error's ``device``.
    :returns: the error to raise (``modbus_exception`` in its metadata).
    """
    meta = {"modbus_exception": str(code)}
    if code == DEVICE_FAILURE:
        return HardwareFault(f"{what}: device failure", device=device, metadata=meta)
    if code == DEVICE_BUSY:
        return DeviceNotReady(
            f"{what}: device busy", device=device, hint="Wait for the running command.", metadata=meta
        )
    if code == ILLEGAL_DATA_VALUE:
        return DeviceNotReady(f"{what}: refused in the current state", device=device, metadata=meta)
    # 01 and 02 mean the driver asked for something outside the register map: a bug here.
    return HwdError(f"{what}: modbus exception {code}", device=device, metadata=meta)


class RtuLink:
    """The one owner of one RS-485 serial line, shared by the units on it.

    :param port: the serial device (``/dev/hwd/modbus`` on a kiosk, a pty in tests).
    :param baudrate: line speed (8N1 framing).
    :param timeout_s: the deadline of one attempt of one transaction.
    :param retries: attempts after the first on a timeout or a corrupted reply.
    :param backoff_s: the wait before the first retry; doubled before each further one.
    """

    def __init__(
        self, port: str, *, baudrate: int = 115200, timeout_s: float = 0.5, retries: int = 2, backoff_s: float = 0.05
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._client: AsyncModbusSerialClient | None = None
        self._opened = False
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        """True between open() and close() (even while the adapter is away)."""
        return self._opened

    async def open(self) -> None:
        """Opens the serial port; a second call does nothing.

        :raises DeviceUnavailable: when the port cannot be opened.
        """
        async with self._lock:
            if self._opened:
                return
            try:
                await self._connect()
            except _NoReply as exc:
                raise DeviceUnavailable(str(exc), device=self.port, hint=LINE_HINT) from exc
            self._opened = True

    async def close(self) -> None:
        """Closes the serial port; safe to call twice or when never opened."""
        async with self._lock:
            self._opened = False
            self._drop()

    async def read_input(self, unit: int, address: int, count: int) -> list[int]:
        """Reads input registers (function 04).

        :param unit: the unit id.
        :param address: the first register (0-based).
        :param count: how many registers.
        :returns: the register values.
        :raises DeviceUnavailable: no reply (after the retries) or the port is gone.
        :raises HwdError: an exception response (see exception_error).
        """
        pdu = await self._transact(
            unit,
            f"read input {address}+{count}",
            lambda c: c.read_input_registers(address, count=count, device_id=unit),
        )
        return list(pdu.registers)

    async def read_holding(self, unit: int, address: int, count: int) -> list[int]:
        """Reads holding registers (function 03).

        :param unit: the unit id.
        :param address: the first register (0-based).
        :param count: how many registers.
        :returns: the register values.
        :raises DeviceUnavailable: no reply (after the retries) or the port is gone.
        :raises HwdError: an exception response (see exception_error).
        """
        pdu = await self._transact(
            unit,
            f"read holding {address}+{count}",
            lambda c: c.read_holding_registers(address, count=count, device_id=unit),
        )
        return list(pdu.registers)

    async def write_registers(
        self, unit: int, address: int, values: Sequence[int], *, retries: int | None = None
    ) -> None:
        """Writes holding registers in one request (function 16).

        :param unit: the unit id.
        :param address: the first register (0-based).
        :param values: the values, each 0..65535.
        :param retries: overrides the link's retries (0 for a write whose repetition is not harmless).
        :raises DeviceUnavailable: no reply (after the retries) or the port is gone.
        :raises HwdError: an exception response (see exception_error).
        """
        data = list(values)
        await self._transact(
            unit, f"write {address}+{len(data)}", lambda c: c.write_registers(address, data, device_id=unit), retries
        )

    async def write_register(self, unit: int, address: int, value: int, *, retries: int | None = None) -> None:
        """Writes one holding register (function 06).

        :param unit: the unit id.
        :param address: the register (0-based).
        :param value: the value, 0..65535.
        :param retries: overrides the link's retries (0 for a write whose repetition is not harmless).
        :raises DeviceUnavailable: no reply (after the retries) or the port is gone.
        :raises HwdError: an exception response (see exception_error).
        """
        await self._transact(
            unit, f"write {address}", lambda c: c.write_register(address, value, device_id=unit), retries
        )

    async def _transact(
        self,
        unit: int,
        what: str,
        request: Callable[[AsyncModbusSerialClient], Awaitable[ModbusPDU]],
        retries: int | None = None,
    ) -> ModbusPDU:
        what = f"{what} on unit {unit} at {self.port}"
        attempts = 1 + (self.retries if retries is None else retries)
        async with self._lock:
            if not self._opened:
                raise DeviceUnavailable(f"{what}: the line is not open", device=self.port, hint=LINE_HINT)
            why = ""
            for attempt in range(attempts):
                if attempt:
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                try:
                    pdu = await self._attempt(request)
                except _NoReply as exc:
                    why = str(exc)
                    log.warning("%s: %s (attempt %s of %s)", what, why, attempt + 1, attempts)
                    continue
                if isinstance(pdu, ExceptionResponse):
                    raise exception_error(pdu.exception_code, what, self.port)
                return pdu
        raise DeviceUnavailable(f"{what}: no reply after {attempts} attempts ({why})", device=self.port, hint=LINE_HINT)

    async def _attempt(self, request: Callable[[AsyncModbusSerialClient], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """One request and its reply within the deadline; reopens a port that went away."""
        if self._client is None:
            await self._connect()
        assert self._client is not None
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                pdu = await request(self._client)
        except (TimeoutError, OSError, ModbusException) as exc:
            why = f"no reply within {self.timeout_s:.3f} s" if isinstance(exc, TimeoutError) else repr(exc)
            if not self._client.connected:  # the adapter went away: reopen on the next attempt
                log.warning("%s lost (%s); it will be reopened", self.port, why)
                self._drop()
            raise _NoReply(why) from exc
        log.debug("unit %s: transaction took %.2f ms", pdu.dev_id, (time.monotonic() - started) * 1000)
        return pdu

    async def _connect(self) -> None:
        # pymodbus retries and reconnects on its own unless told not to: this class owns both
        # (a write retried blindly could act twice).
        client = AsyncModbusSerialClient(
            self.port,
            framer=FramerType.RTU,
            baudrate=self.baudrate,
            timeout=self.timeout_s * 2,  # our asyncio deadline is the one that fires
            retries=0,
            reconnect_delay=0,
        )
        if not await client.connect():
            client.close()
            raise _NoReply(f"cannot open {self.port}")
        self._client = client
        log.info("opened %s at %s baud", self.port, self.baudrate)

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


async def write_command(link: RtuLink, unit: int, command_address: int, counter_address: int, values: list[int]) -> int:
    """Writes a command block once, even when a reply is lost (modbus-line.md, command block).

    The controller adds one to its COMMAND_COUNTER (an input register) for each accepted command.
    The counter is read before the write; when a write gets no reply, it is read again: if it
    moved, the first write was taken and is not repeated.

    :param link: the line.
    :param unit: the unit id.
    :param command_address: the COMMAND holding register (COMMAND, ARGUMENT follow).
    :param counter_address: the COMMAND_COUNTER input register.
    :param values: [COMMAND, ARGUMENT].
    :returns: the new command counter.
    :raises DeviceUnavailable: no reply after the link's retries.
    :raises HwdError: the command was refused (see exception_error).
    """
    (before,) = await link.read_input(unit, counter_address, 1)
    attempts = 1 + link.retries
    for attempt in range(attempts):
        try:
            await link.write_registers(unit, command_address, values, retries=0)
        except DeviceUnavailable:  # the request or its reply was lost: which one, the counter tells
            (after,) = await link.read_input(unit, counter_address, 1)
            if after != before:
                log.info("unit %s: command %s was taken though its reply was lost", unit, values)
                return after
            if attempt + 1 < attempts:
                await asyncio.sleep(link.backoff_s * 2**attempt)
            continue
        return (before + 1) % COUNTER_MODULO
    raise DeviceUnavailable(
        f"command {values} on unit {unit} at {link.port}: no reply after {attempts} attempts",
        device=link.port,
        hint=LINE_HINT,
    )
