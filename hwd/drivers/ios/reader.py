"""The iOS reader the phone service calls: lockdown through usbmuxd, the Trust dialog, the report.

Importing this module is cheap: pymobiledevice3 is imported only when a phone is read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from hwd.drivers.ios.lockdown import DOMAINS, LockdownRead, forget, read_phone
from hwd.drivers.ios.parse import report_from_lockdown
from hwd.errors import PhoneError
from hwd.model.phones import PhoneReport, PortEvent

log = logging.getLogger(__name__)


def udid_of(event: PortEvent) -> str:
    """The UDID of an iPhone's arrival: its serial, else the ``usbmux:UDID`` endpoint's.

    :raises hwd.errors.PhoneError: ``INVALID_ENDPOINT`` when neither names one.
    """
    kind, _, udid = event.endpoint.partition(":")
    udid = event.serial or (udid if kind == "usbmux" else "")
    if not udid:
        raise PhoneError(f"no UDID for the iPhone on {event.port} ({event.endpoint!r})", code="INVALID_ENDPOINT")
    return udid


def report_of(read: LockdownRead) -> PhoneReport:
    """The report of a paired read (fields a domain did not give say so)."""
    why = {name: "the phone did not give this domain" for name in DOMAINS if getattr(read, name) is None}
    if read.ioreg_battery is None:
        why["diagnostics_relay"] = "the phone gave no AppleSmartBattery entry"
    return report_from_lockdown(
        read.values,
        paired=True,
        battery=read.battery,
        disk=read.disk,
        fmip=read.fmip,
        chaperone=read.chaperone,
        ioreg_battery=read.ioreg_battery,
        why=why,
    )


class IosReader:
    """Reads iPhones through usbmuxd and lockdownd.

    :param usbmux_address: ``HOST:PORT`` or a socket path; None for the system's /var/run/usbmuxd.
    :param record_dir: where pair records are kept while a phone is plugged (made mode 0700).
    :param trust_timeout_s: how long the customer has to trust the kiosk on the phone.
    :param timeout_s: the longest one step (a usbmuxd exchange, a lockdown request, the session
        start) may take; the phone may stay silent for half of it.
    """

    def __init__(self, usbmux_address: str | None, record_dir: Path, trust_timeout_s: float, timeout_s: float) -> None:
        self._usbmux = usbmux_address
        self._record_dir = record_dir
        self._trust_timeout_s = trust_timeout_s
        self._timeout_s = timeout_s

    async def identify(
        self,
        event: PortEvent,
        on_prompt: Callable[[str, float], Awaitable[None]],
        on_identifying: Callable[[], Awaitable[None]],
    ) -> PhoneReport:
        """Connects to the iPhone of ``event``, gets it to trust the kiosk, reads its report and disconnects.

        Cancelling (the phone was unplugged) closes every connection at once.

        :param event: the arrival; ``serial`` is the UDID, ``endpoint`` ``usbmux:UDID``.
        :param on_prompt: awaited with what the customer must do and the seconds they have, each
            time the phone shows "Trust This Computer?" (again).
        :param on_identifying: awaited once the phone trusts the kiosk, before the read.
        :returns: the report.
        :raises hwd.errors.PhoneError: TRUST_REFUSED, TRUST_TIMEOUT, PHONE_STALLED, PHONE_DISCONNECTED,
            PHONE_PROTOCOL_ERROR, PHONE_TOO_SLOW, USBMUXD_UNAVAILABLE, PAIR_RECORD_UNWRITABLE,
            INVALID_ENDPOINT.
        """
        read = await read_phone(
            udid_of(event),
            usbmux_address=self._usbmux,
            record_dir=self._record_dir,
            on_prompt=on_prompt,
            on_identifying=on_identifying,
            trust_timeout_s=self._trust_timeout_s,
            timeout_s=self._timeout_s,
        )
        report = report_of(read)
        log.info("phone on %s read: %s %s", event.port, report.model.value, report.os_version.value)
        return report

    async def release(self, event: PortEvent) -> None:
        """Forgets the phone that left ``event.port``: its pair record is deleted everywhere it was kept.

        :raises hwd.errors.PhoneError: ``INVALID_ENDPOINT`` when the event names no UDID.
        """
        await forget(
            udid_of(event), usbmux_address=self._usbmux, record_dir=self._record_dir, timeout_s=self._timeout_s
        )
