"""The one table from hwd errors to gRPC status codes, with google.rpc.ErrorInfo details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc.error_details_pb2 import ErrorInfo
from google.rpc.status_pb2 import Status
from grpc_status import rpc_status

from hwd.errors import ErrorKind, HwdError

DOMAIN = "hwd.dev"

STATUS_CODES: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.ABORTED: grpc.StatusCode.ABORTED,
    ErrorKind.EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}


def to_status(error: HwdError) -> grpc.Status:
    """The gRPC status for ``error``: code from the table, message, and an ErrorInfo detail
    carrying the reason, the device and the recovery hint."""
    metadata = dict(error.metadata)
    if error.device:
        metadata["device"] = error.device
    if error.hint:
        metadata["recovery_hint"] = error.hint
    detail = any_pb2.Any()
    detail.Pack(ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata))
    code = STATUS_CODES[error.kind]
    status = Status(code=code.value[0], message=error.message, details=[detail])
    result: grpc.Status = rpc_status.to_status(status)
    return result
