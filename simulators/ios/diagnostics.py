"""The ``com.apple.mobile.diagnostics_relay`` service of a simulated iPhone.

A host reaches it on the device port StartService gave, through usbmuxd Connect, and speaks
TLS at once (the phone as server, as for the session). Requests are lockdownd-framed plists:
``IORegistry`` (``EntryClass``, ``EntryName`` or ``CurrentPlane``; an empty string counts as
absent, as libimobiledevice sends it), ``Goodbye``; anything else is ``UnknownRequest``.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from simulators.ios.faults import IphoneFaults
from simulators.ios.lockdownd import HANDSHAKE_DEADLINE_S, IDLE_DEADLINE_S, Dropped, send_reply
from simulators.ios.plist_wire import WireError
from simulators.ios.spec import IphoneProfile
from simulators.ios.tls import FrameReader, LinkClosed, PlainLink, TlsLink

log = logging.getLogger(__name__)

SERVICE = "com.apple.mobile.diagnostics_relay"


def ioregistry_reply(profile: IphoneProfile, request: dict[str, Any]) -> dict[str, Any]:
    """The answer to one IORegistry request."""
    entry_class = request.get("EntryClass") or request.get("EntryName")
    if not isinstance(entry_class, str):
        if request.get("CurrentPlane"):
            return {"Status": "Success", "Diagnostics": {"IORegistry": {}}}
        return {"Status": "MissingArguments"}
    entry = profile.ioregistry(entry_class)
    if entry is None:
        return {"Status": "Failure"}
    return {"Status": "Success", "Diagnostics": {"IORegistry": entry}}


def answer(profile: IphoneProfile, request: dict[str, Any]) -> dict[str, Any]:
    """The answer to one diagnostics_relay request (not Goodbye)."""
    if request.get("Request") == "IORegistry":
        return ioregistry_reply(profile, request)
    return {"Status": "UnknownRequest"}


async def serve_diagnostics(
    plain: PlainLink, context: ssl.SSLContext, profile: IphoneProfile, faults: IphoneFaults
) -> None:
    """Serve one host connection to the service until Goodbye, a close, garbage or a cut."""
    frames = FrameReader()
    try:
        link = TlsLink(plain, context)
        await link.handshake(HANDSHAKE_DEADLINE_S)
        while True:
            request = await frames.next(link, IDLE_DEADLINE_S)
            if isinstance(request, WireError):
                log.info("diagnostics_relay of %s got garbage: %s", profile.serial, request.reason)
                return
            if request.get("Request") == "Goodbye":
                await send_reply(link, faults, {"Status": "Success"})
                return
            await send_reply(link, faults, answer(profile, request))
    except (LinkClosed, Dropped) as exc:
        log.debug("diagnostics_relay connection of %s ends: %r", profile.serial, exc)
    finally:
        plain.writer.close()
