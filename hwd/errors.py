"""The one exception tree of hwd.

Every error has a stable ``reason`` code (the names of hwd.v1.ErrorReason without prefix) and a
``kind`` that hwd/rpc/errors.py translates to a gRPC status code, in one table, at the edge.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """The families of failure a caller can act on (one gRPC code each)."""

    INVALID = "INVALID"
    NOT_FOUND = "NOT_FOUND"
    PRECONDITION = "PRECONDITION"
    UNAVAILABLE = "UNAVAILABLE"
    ABORTED = "ABORTED"
    EXHAUSTED = "EXHAUSTED"
    PERMISSION = "PERMISSION"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INTERNAL = "INTERNAL"


class HwdError(Exception):
    """Base of every error hwd raises on purpose.

    :param message: what went wrong, for a human.
    :param device: the device concerned, if any.
    :param hint: what a technician or customer must do to recover.
    :param metadata: extra machine-readable facts (e.g. ``last_sequence``).
    """

    kind = ErrorKind.INTERNAL
    reason = "INTERNAL"
    default_hint = ""

    def __init__(self, message: str, *, device: str = "", hint: str = "", metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.device = device
        self.hint = hint or self.default_hint
        self.metadata = dict(metadata or {})


class InvalidArgument(HwdError):
    """A request field is missing or malformed."""

    kind = ErrorKind.INVALID
    reason = "INVALID_ARGUMENT"


class RequestIdReused(InvalidArgument):
    """A request id came back with other parameters."""

    reason = "REQUEST_ID_REUSED"
    default_hint = "Use a new request id for a new command."


class ConfigError(InvalidArgument):
    """The configuration is invalid; the message names file, key and reason."""

    reason = "CONFIG_INVALID"
    default_hint = "Fix the named key, then check the file with `hwd config check FILE`."


class UnknownDevice(HwdError):
    """The named device is not known."""

    kind = ErrorKind.NOT_FOUND
    reason = "UNKNOWN_DEVICE"
    default_hint = "List the devices with `hwd probe`."


class UnknownLease(HwdError):
    """The lease id is not held (never was, expired, or released)."""

    kind = ErrorKind.NOT_FOUND
    reason = "UNKNOWN_LEASE"
    default_hint = "Acquire the lease again."


class UnknownJob(HwdError):
    """No print job has that id."""

    kind = ErrorKind.NOT_FOUND
    reason = "UNKNOWN_JOB"


class UnknownPort(HwdError):
    """No phone port has that path."""

    kind = ErrorKind.NOT_FOUND
    reason = "UNKNOWN_PORT"


class LeaseHeld(HwdError):
    """Another client holds the device's lease."""

    kind = ErrorKind.PRECONDITION
    reason = "LEASE_HELD"
    default_hint = "Wait for the holder to release it or for it to expire."


class DeviceNotReady(HwdError):
    """The device is not in a state that allows the command."""

    kind = ErrorKind.PRECONDITION
    reason = "DEVICE_NOT_READY"


class CommandInProgress(HwdError):
    """A command with this request id is still running."""

    kind = ErrorKind.PRECONDITION
    reason = "COMMAND_IN_PROGRESS"
    default_hint = "Wait for the first call to finish, then repeat the request to read its outcome."


class DeviceUnavailable(HwdError):
    """The device is gone or not answering."""

    kind = ErrorKind.UNAVAILABLE
    reason = "DEVICE_UNAVAILABLE"


class ShuttingDown(HwdError):
    """The daemon is stopping."""

    kind = ErrorKind.UNAVAILABLE
    reason = "SHUTTING_DOWN"
    default_hint = "Retry once the daemon is back."


class JournalUnavailable(HwdError):
    """The journal could not be written; nothing was done."""

    kind = ErrorKind.UNAVAILABLE
    reason = "JOURNAL_UNAVAILABLE"
    default_hint = "Check free space and permissions of the state directory."


class HardwareFault(HwdError):
    """The hardware failed in the middle of a command."""

    kind = ErrorKind.ABORTED
    reason = "HARDWARE_FAULT"


class OutcomeUnknown(HwdError):
    """The command was interrupted by a crash; whether it acted is unknown."""

    kind = ErrorKind.ABORTED
    reason = "OUTCOME_UNKNOWN"
    default_hint = "Check the device before deciding; the daemon will not redo this command."


class PhoneError(HwdError):
    """Talking to a phone failed: it stalled, dropped, sent garbage or too much, or the customer
    refused or ignored the prompt.

    :param code: the port's reason (also ErrorInfo metadata ``port_reason``), e.g. ``"PHONE_STALLED"``.
    """

    kind = ErrorKind.ABORTED
    reason = "PHONE_FAILED"

    def __init__(
        self, message: str, *, code: str = "", device: str = "", hint: str = "", metadata: dict[str, str] | None = None
    ) -> None:
        facts = dict(metadata or {})
        self.code = code or facts.get("port_reason", "PHONE_FAILED")
        super().__init__(message, device=device, hint=hint, metadata={**facts, "port_reason": self.code})


class Overloaded(HwdError):
    """Too much load."""

    kind = ErrorKind.EXHAUSTED
    reason = "OVERLOADED"
    default_hint = "Retry later with backoff."


class SubscriberTooSlow(HwdError):
    """An event subscriber fell behind; metadata ``last_sequence`` says where to resume."""

    kind = ErrorKind.EXHAUSTED
    reason = "SUBSCRIBER_TOO_SLOW"
    default_hint = "Reconnect with after_sequence set to the last_sequence received."


class MethodNotAllowed(HwdError):
    """The method is not allowed on this socket."""

    kind = ErrorKind.PERMISSION
    reason = "METHOD_NOT_ALLOWED"
    default_hint = "Use the socket of the role that may call it (tech.sock for technician methods)."


class Unauthenticated(HwdError):
    """Missing or invalid authorization."""

    kind = ErrorKind.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


_BY_REASON: dict[str, type[HwdError]] = {}


def _collect(cls: type[HwdError]) -> None:
    _BY_REASON.setdefault(cls.reason, cls)
    for sub in cls.__subclasses__():
        _collect(sub)


_collect(HwdError)


def error_from_reason(
    reason: str, message: str, *, device: str = "", hint: str = "", metadata: dict[str, str] | None = None
) -> HwdError:
    """Rebuilds an error from its reason code (e.g. the stored outcome of a failed command)."""
    return _BY_REASON.get(reason, HwdError)(message, device=device, hint=hint, metadata=metadata)
