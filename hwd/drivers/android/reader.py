"""The Android reader the phone service calls: connect over ADB, wait for trust, read, close."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from hwd.drivers.android.read import read_report
from hwd.drivers.android.transport import open_session
from hwd.errors import PhoneError
from hwd.model.phones import PhoneReport, PortEvent

log = logging.getLogger(__name__)

#: What the customer must do while the phone shows the "Allow USB debugging?" prompt.
TRUST_PROMPT = (
    'Tap "Allow" on the phone\'s "Allow USB debugging?" prompt '
    '(tick "Always allow from this computer" first). Unlock the phone if the prompt does not show.'
)
#: The read makes two round trips at most, each within ``timeout_s``.
READ_ROUND_TRIPS = 2


class AndroidReader:
    """Reads Android phones over ADB with the kiosk's key.

    :param key_dir: where the kiosk's ADB key pair lives (made on first use, mode 0600).
    :param trust_timeout_s: how long the customer has to allow the kiosk on the phone.
    :param timeout_s: the longest the connect or one shell command may take.
    """

    def __init__(self, key_dir: Path, trust_timeout_s: float, timeout_s: float) -> None:
        self._key_dir = key_dir
        self._trust_timeout_s = trust_timeout_s
        self._timeout_s = timeout_s

    async def identify(
        self,
        event: PortEvent,
        on_prompt: Callable[[str, float], Awaitable[None]],
        on_identifying: Callable[[], Awaitable[None]],
    ) -> PhoneReport:
        """Connects to the phone of ``event``, reads its report and disconnects.

        Cancelling (the phone was unplugged) closes the connection at once.

        :param event: the arrival; ``endpoint`` is ``tcp:HOST:PORT`` or ``usb:BUS:ADDRESS``.
        :param on_prompt: awaited with what the customer must do and the seconds they have,
            when the phone shows the "Allow USB debugging?" prompt.
        :param on_identifying: awaited once the phone trusts the kiosk, before the read.
        :returns: the report.
        :raises hwd.errors.PhoneError: ``USB_DEBUGGING_OFF`` when the phone has no ADB interface,
            else the transport's code (TRUST_REFUSED, TRUST_TIMEOUT, PHONE_STALLED, ...).
        """
        if not event.debuggable or not event.endpoint:
            raise PhoneError(
                "USB debugging is off on this phone",
                code="USB_DEBUGGING_OFF",
                hint="Turn on USB debugging in the phone's developer options, then plug it in again.",
            )

        async def prompt() -> None:
            await on_prompt(TRUST_PROMPT, self._trust_timeout_s)

        session = await open_session(
            event.endpoint,
            self._key_dir,
            on_prompt=prompt,
            trust_timeout_s=self._trust_timeout_s,
            timeout_s=self._timeout_s,
        )
        try:
            await on_identifying()
            report = await read_report(session, deadline_s=self._timeout_s * READ_ROUND_TRIPS)
        finally:
            await session.close()
        log.info("phone on %s read: %s %s", event.port, report.manufacturer.value, report.model.value)
        return report
