"""How adb-shell and socket failures map to the port reason codes of :class:`~hwd.errors.PhoneError`."""

from __future__ import annotations

from adb_shell import exceptions as adb_errors  # type: ignore[import-untyped]

from hwd.errors import PhoneError


class PeerClosed(ConnectionError):
    """The phone closed the connection."""


class Oversized(Exception):
    """A packet header claimed a payload longer than the maximum offered."""


_PROTOCOL_ERRORS = (
    adb_errors.InvalidChecksumError,
    adb_errors.InvalidCommandError,
    adb_errors.InvalidResponseError,
    Oversized,
)


def phone_error(exc: Exception, *, trusting: bool = False) -> PhoneError:
    """Maps an adb-shell or socket failure to a PhoneError with its port reason code.

    :param trusting: the failure came while the phone showed the "Allow USB debugging?" prompt.
    """
    if isinstance(exc, PhoneError):
        return exc
    if isinstance(exc, PeerClosed | adb_errors.DeviceAuthError) and trusting:
        code, what = "TRUST_REFUSED", "the phone refused the kiosk (the prompt was denied)"
    elif isinstance(exc, adb_errors.TcpTimeoutException | adb_errors.UsbReadFailedError) and trusting:
        code, what = "TRUST_TIMEOUT", "nobody allowed the kiosk on the phone in time"
    elif isinstance(exc, adb_errors.TcpTimeoutException | adb_errors.AdbTimeoutError):
        code, what = "PHONE_STALLED", "the phone stopped answering"
    elif isinstance(exc, _PROTOCOL_ERRORS):
        code, what = "PHONE_PROTOCOL_ERROR", "the phone sent something that is not ADB"
    elif isinstance(exc, OSError | adb_errors.AdbConnectionError | adb_errors.UsbWriteFailedError):
        code, what = "PHONE_DISCONNECTED", "the connection to the phone broke"
    elif isinstance(exc, adb_errors.UsbReadFailedError | adb_errors.UsbDeviceNotFoundError):
        code, what = "PHONE_DISCONNECTED", "the phone is gone from USB"
    else:  # adb-shell raises assorted errors on malformed input
        code, what = "PHONE_PROTOCOL_ERROR", "the phone's answer could not be understood"
    return PhoneError(f"{what}: {type(exc).__name__}: {str(exc)[:200]}", code=code)
