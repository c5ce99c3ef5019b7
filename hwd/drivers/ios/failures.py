"""How pymobiledevice3, TLS and socket failures map to the port reason codes of :class:`~hwd.errors.PhoneError`."""

from __future__ import annotations

import asyncio
import plistlib
import ssl
from xml.parsers.expat import ExpatError

from hwd.errors import PhoneError


class Stalled(Exception):
    """The phone sent nothing for longer than a message may take."""


class Dropped(ConnectionError):
    """The phone closed the lockdown connection (an unplug, a drop, or the USB reset after Trust)."""


#: What comes of a disconnection; the trust flow reconnects on these while a reset is expected.
def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection to the phone broke (rather than that it misbehaved)."""
    from pymobiledevice3 import exceptions as pmd3

    if isinstance(exc, PhoneError):
        return exc.code == "PHONE_DISCONNECTED"
    if isinstance(exc, ssl.SSLError):
        return isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError)
    return isinstance(
        exc,
        Dropped
        | OSError
        | asyncio.IncompleteReadError
        | pmd3.ConnectionTerminatedError
        | pmd3.DeviceNotFoundError
        | pmd3.NoDeviceConnectedError
        | pmd3.BadDevError
        | pmd3.ConnectionFailedError,
    )


def phone_error(exc: BaseException) -> PhoneError:
    """Maps a failure while talking to a phone to a PhoneError with its port reason code.

    Timeouts of a whole step are the caller's to name (PHONE_TOO_SLOW or TRUST_TIMEOUT).
    """
    from pymobiledevice3 import exceptions as pmd3

    if isinstance(exc, PhoneError):
        return exc
    if isinstance(exc, Stalled):
        code, what = "PHONE_STALLED", "the phone stopped answering"
    elif isinstance(exc, pmd3.UserDeniedPairingError):
        code, what = "TRUST_REFUSED", 'the customer tapped "Don\'t Trust"'
    elif isinstance(exc, pmd3.PairingDialogResponsePendingError):
        code, what = "TRUST_TIMEOUT", "nobody answered the Trust dialog in time"
    elif isinstance(exc, pmd3.ConnectionFailedToUsbmuxdError):
        code, what = "USBMUXD_UNAVAILABLE", "usbmuxd is unreachable"
    elif is_disconnect(exc):
        code, what = "PHONE_DISCONNECTED", "the connection to the phone broke"
    elif isinstance(exc, pmd3.ProtocolError | plistlib.InvalidFileException | ExpatError | ssl.SSLError):
        code, what = "PHONE_PROTOCOL_ERROR", "the phone sent something that is not lockdown"
    elif isinstance(exc, pmd3.LockdownError | pmd3.PairingError):
        code, what = "PHONE_PROTOCOL_ERROR", "lockdownd refused a request"
    else:  # pymobiledevice3 and plistlib raise assorted errors on malformed input
        code, what = "PHONE_PROTOCOL_ERROR", "the phone's answer could not be understood"
    return PhoneError(f"{what}: {type(exc).__name__}: {str(exc)[:200]}", code=code)
