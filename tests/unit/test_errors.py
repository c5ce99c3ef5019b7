"""The exception tree and its one table to gRPC status codes with ErrorInfo details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc.error_details_pb2 import ErrorInfo
from google.rpc.status_pb2 import Status

import hwd.errors as errors_module
from hwd.errors import (
    ErrorKind,
    HwdError,
    LeaseHeld,
    MethodNotAllowed,
    OutcomeUnknown,
    RequestIdReused,
    ShuttingDown,
    SubscriberTooSlow,
    UnknownLease,
    error_from_reason,
)
from hwd.rpc.errors import DOMAIN, STATUS_CODES, to_status
from hwd.rpc.pb.hwd.v1 import common_pb2

PROTO_REASONS = {name.removeprefix("ERROR_REASON_") for name in common_pb2.ErrorReason.DESCRIPTOR.values_by_name} - {
    "UNSPECIFIED"
}


def _all_errors() -> list[type[HwdError]]:
    found: list[type[HwdError]] = []
    todo = [HwdError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


ERRORS = _all_errors()


def _error_info(status: grpc.Status) -> ErrorInfo:
    [details] = [value for key, value in status.trailing_metadata if key == "grpc-status-details-bin"]
    assert isinstance(details, bytes)
    [packed] = Status.FromString(details).details
    info = ErrorInfo()
    assert packed.Unpack(info)
    return info


def test_the_tree_has_every_error_the_module_defines() -> None:
    defined = {v for v in vars(errors_module).values() if isinstance(v, type) and issubclass(v, HwdError)}
    assert defined <= set(ERRORS)
    assert len(ERRORS) > 10


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_reason_is_a_proto_error_reason(cls: type[HwdError]) -> None:
    assert cls.reason in PROTO_REASONS


def test_reasons_are_unique() -> None:
    reasons = [cls.reason for cls in ERRORS]
    assert len(reasons) == len(set(reasons))


def test_every_kind_has_a_status_code() -> None:
    assert set(STATUS_CODES) == set(ErrorKind)
    assert len(set(STATUS_CODES.values())) == len(ErrorKind), "two kinds share a code"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RequestIdReused("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (UnknownLease("x"), grpc.StatusCode.NOT_FOUND),
        (LeaseHeld("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (ShuttingDown("x"), grpc.StatusCode.UNAVAILABLE),
        (OutcomeUnknown("x"), grpc.StatusCode.ABORTED),
        (SubscriberTooSlow("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (MethodNotAllowed("x"), grpc.StatusCode.PERMISSION_DENIED),
        (HwdError("x"), grpc.StatusCode.INTERNAL),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, HwdError) else v.name,
)
def test_to_status_uses_the_code_of_the_table(error: HwdError, code: grpc.StatusCode) -> None:
    status = to_status(error)
    assert status.code is code
    assert _error_info(status).reason == error.reason


def test_to_status_carries_message_device_hint_and_metadata() -> None:
    err = SubscriberTooSlow("fell behind", device="events", hint="reconnect", metadata={"last_sequence": "41"})
    status = to_status(err)
    assert status.details == "fell behind"
    info = _error_info(status)
    assert (info.domain, info.reason) == (DOMAIN, "SUBSCRIBER_TOO_SLOW") == ("hwd.dev", "SUBSCRIBER_TOO_SLOW")
    assert dict(info.metadata) == {"device": "events", "recovery_hint": "reconnect", "last_sequence": "41"}


def test_to_status_sends_the_default_hint_and_leaves_out_an_empty_device() -> None:
    info = _error_info(to_status(LeaseHeld("held")))
    assert dict(info.metadata) == {"recovery_hint": LeaseHeld.default_hint}


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_error_from_reason_rebuilds_the_class(cls: type[HwdError]) -> None:
    err = error_from_reason(cls.reason, "msg", device="printer", hint="do this")
    assert type(err) is cls
    assert (err.message, err.device, err.hint, str(err)) == ("msg", "printer", "do this", "msg")


def test_error_from_an_unknown_reason_is_a_plain_hwd_error() -> None:
    err = error_from_reason("NO_SUCH_REASON", "msg", device="d")
    assert type(err) is HwdError
    assert (err.reason, err.message, err.device) == ("INTERNAL", "msg", "d")
