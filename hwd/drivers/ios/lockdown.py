"""Reading an iPhone over lockdown through usbmuxd: connect, get trusted, start a session, read.

The flow of one identification (DESIGN.md section 5):

1. usbmuxd's SystemBUID, the phone's DeviceID by UDID, lockdownd's QueryType and the root values
   an unpaired phone gives (ProductType, UniqueDeviceID, ...).
2. A session with the pair record kept for the phone, if any and the phone still honours it.
3. Otherwise Pair: the phone shows "Trust This Computer?" and the customer is prompted
   (:class:`~hwd.drivers.ios.trust.TrustFlow`); the accepted record is kept (our directory and
   usbmuxd). A phone resets its USB connection after Trust: the connection drops and the phone
   comes back under a new DeviceID with the same UDID, which is waited for and reconnected to.
4. StartSession (TLS), the root values again, the battery, disk, Find My and supervision
   domains, and diagnostics_relay's IORegistry battery entry.

Every usbmuxd exchange and every lockdown step has a deadline, every message from the phone a
size cap and a stall deadline; every failure is a PhoneError with a port reason code; cancelling
closes every socket at once. pymobiledevice3 is imported only once a phone is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hwd.drivers.ios.failures import is_disconnect, phone_error
from hwd.drivers.ios.records import PairRecords, checked_udid, load_record
from hwd.drivers.ios.trust import PromptCallback, TrustFlow
from hwd.drivers.ios.usbmux import Usbmux
from hwd.errors import PhoneError

if TYPE_CHECKING:
    from hwd.drivers.ios.client import KioskLockdown

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The lockdown domains read once a session is up, by the name report_from_lockdown gives them.
DOMAINS = {
    "battery": "com.apple.mobile.battery",
    "disk": "com.apple.disk_usage",
    "fmip": "com.apple.fmip",
    "chaperone": "com.apple.mobile.chaperone",
}
#: The read after the session starts (4 domains, a service start, an IORegistry query, two
#: Goodbyes: 8 round trips, each allowed ``timeout_s / 2``) may take this many times ``timeout_s``
#: in all: a phone slow at every answer is PHONE_TOO_SLOW even when no single answer stalls.
READ_STEPS = 2
#: How many times the phone may drop the connection while being trusted (the USB reset after Trust).
MAX_RECONNECTS = 3


@dataclass(frozen=True)
class LockdownRead:
    """What lockdown gave: root values after pairing, the domains (None when not given), the
    IORegistry battery entry, and the root values the phone gave before it was paired."""

    values: dict[str, Any]
    battery: dict[str, Any] | None = None
    disk: dict[str, Any] | None = None
    fmip: dict[str, Any] | None = None
    chaperone: dict[str, Any] | None = None
    ioreg_battery: dict[str, Any] | None = None
    unpaired: dict[str, Any] = field(default_factory=dict)


class LockdownSession:
    """One identification of one phone.

    :param udid: the phone's UDID.
    :param mux: its usbmuxd.
    :param records: where pair records are kept.
    :param trust: the Trust dialog flow (its prompts and deadline).
    :param timeout_s: the longest one step may take; the phone may be silent for half of it.
    """

    def __init__(self, udid: str, mux: Usbmux, records: PairRecords, trust: TrustFlow, timeout_s: float) -> None:
        self._udid = checked_udid(udid)
        self._mux = mux
        self._records = records
        self._trust = trust
        self._timeout_s = timeout_s
        self._unpaired: dict[str, Any] | None = None
        self._material: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._paired_now = False

    async def read(self, on_identifying: Callable[[], Awaitable[None]]) -> LockdownRead:
        """Connects, gets trusted, reads and disconnects.

        :param on_identifying: awaited once a session is up, before the read.
        :raises hwd.errors.PhoneError: TRUST_REFUSED, TRUST_TIMEOUT, PHONE_STALLED, PHONE_DISCONNECTED,
            PHONE_PROTOCOL_ERROR, PHONE_TOO_SLOW, USBMUXD_UNAVAILABLE, PAIR_RECORD_UNWRITABLE.
        """
        client = await self._establish()
        try:
            await on_identifying()
            async with asyncio.timeout(self._timeout_s * READ_STEPS):
                read = await self._values(client)
                await client.goodbye()
            return read
        except TimeoutError as exc:
            raise PhoneError(
                f"reading the phone took longer than {self._timeout_s * READ_STEPS:g} s", code="PHONE_TOO_SLOW"
            ) from exc
        except Exception as exc:
            raise phone_error(exc) from exc
        finally:
            await client.close()

    async def _establish(self) -> KioskLockdown:
        buid = await self._mux.read_buid()
        stale: int | None = None
        for _ in range(MAX_RECONNECTS + 1):
            devid = await self._mux.wait_for(self._udid, stale=stale, timeout_s=self._timeout_s)
            try:
                return await self._attempt(devid, buid)
            except Exception as exc:
                if not ((self._trust.engaged or self._paired_now) and is_disconnect(exc)):
                    raise phone_error(exc) from exc
                log.info("phone %s dropped the connection while pairing (the USB reset after Trust?)", self._udid)
                stale = devid
                self._trust.interrupted()
        raise PhoneError(
            f"the phone dropped the connection {MAX_RECONNECTS + 1} times while pairing", code="PHONE_DISCONNECTED"
        )

    async def _attempt(self, devid: int, buid: str) -> KioskLockdown:
        from hwd.drivers.ios.client import connect_lockdown

        stall_s = self._timeout_s / 2
        client = await self._step(connect_lockdown(self._mux, self._udid, devid, buid, stall_s), "connecting")
        try:
            if self._unpaired is None:
                self._unpaired = dict(client.all_values)
            if not await self._session(client):
                await self._pair(client, devid)
                if not await self._session(client):
                    raise PhoneError(
                        "the phone accepted the pairing but refused a session", code="PHONE_PROTOCOL_ERROR"
                    )
            return client
        except BaseException:
            await client.close()
            raise

    async def _session(self, client: KioskLockdown) -> bool:
        """Starts a session with the kept record; False (and the record forgotten) when there is none
        or the phone no longer honours it."""
        record = await asyncio.to_thread(self._records.load, self._udid)
        if record is None:
            data = await self._mux.read_pair_record(self._udid)
            record = load_record(data) if data else None
        if record is None:
            return False
        client.pair_record = record
        if await self._step(client.validate_pairing(), "starting a session"):
            return True
        log.info("phone %s no longer honours its pair record; pairing again", self._udid)
        await self._records.forget(self._udid)
        return False

    async def _pair(self, client: KioskLockdown, devid: int) -> None:
        from hwd.drivers.ios.client import kiosk_identity, pairing_material

        key = client.device_public_key
        if not isinstance(key, bytes) or not key:
            raise PhoneError("the phone gave no DevicePublicKey to pair with", code="PHONE_PROTOCOL_ERROR")
        if self._material is None:  # certificates for this phone, signed off the event loop
            try:
                identity = await asyncio.to_thread(kiosk_identity, self._records.directory)
            except (OSError, ValueError) as exc:
                raise PhoneError(f"cannot keep the kiosk's pairing keys: {exc}", code="PAIR_RECORD_UNWRITABLE") from exc
            try:
                self._material = await asyncio.to_thread(pairing_material, client, key, identity)
            except ValueError as exc:
                raise PhoneError(f"cannot pair: {exc}", code="PHONE_PROTOCOL_ERROR") from exc
        options, record = self._material
        reply = await self._trust.run(lambda: self._step(client.request_pair(options), "pairing"))
        escrow = reply.get("EscrowBag")
        kept = {**record, "EscrowBag": escrow} if isinstance(escrow, bytes) else record
        self._paired_now = True
        log.info("phone %s trusts the kiosk", self._udid)
        await self._records.save(self._udid, devid, kept)

    async def _values(self, client: KioskLockdown) -> LockdownRead:
        domains = {name: await client.domain(domain) for name, domain in DOMAINS.items()}
        return LockdownRead(
            values=dict(client.all_values),
            ioreg_battery=await client.battery_registry(),
            unpaired=self._unpaired or {},
            **domains,
        )

    async def _step(self, work: Awaitable[T], what: str) -> T:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await work
        except TimeoutError as exc:
            raise PhoneError(f"{what} took longer than {self._timeout_s:g} s", code="PHONE_TOO_SLOW") from exc


async def read_phone(
    udid: str,
    *,
    usbmux_address: str | None,
    record_dir: Path,
    on_prompt: PromptCallback,
    on_identifying: Callable[[], Awaitable[None]],
    trust_timeout_s: float,
    timeout_s: float,
) -> LockdownRead:
    """Reads the phone ``udid`` through the usbmuxd at ``usbmux_address`` (see :class:`LockdownSession`).

    :param record_dir: where pair records are kept (mode 0700).
    :param on_prompt: awaited with what the customer must do and the seconds left, each time the
        phone shows the Trust dialog (again).
    :raises hwd.errors.PhoneError: see :meth:`LockdownSession.read`.
    """
    mux = Usbmux(usbmux_address, timeout_s)
    trust = TrustFlow(on_prompt, trust_timeout_s)
    session = LockdownSession(udid, mux, PairRecords(record_dir, mux), trust, timeout_s)
    return await session.read(on_identifying)


async def forget(udid: str, *, usbmux_address: str | None, record_dir: Path, timeout_s: float) -> list[str]:
    """Deletes the pair record of ``udid`` everywhere it was kept (see :meth:`PairRecords.forget`).

    :returns: where one was deleted.
    """
    mux = Usbmux(usbmux_address, timeout_s)
    return await PairRecords(record_dir, mux).forget(udid)
