"""Exit codes of `hwd`, and the one table from gRPC status codes to them."""

from __future__ import annotations

import enum

import grpc


class ExitCode(enum.IntEnum):
    """What a script can test after running `hwd` (documented in docs/cli.md)."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    UNREACHABLE = 3
    PERMISSION = 4
    BAD_REQUEST = 5
    PRECONDITION = 6
    EXHAUSTED = 7
    DEADLINE = 8
    CONFIG = 9
    INTERRUPTED = 130


# The only place that maps status codes to exit codes; codes not listed are UNEXPECTED.
# DEADLINE_EXCEEDED while connecting is reported as UNREACHABLE by hwd.cli.client before any call.
STATUS_EXIT_CODES: dict[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.OK: ExitCode.OK,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNREACHABLE,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.PERMISSION,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.PERMISSION,
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.BAD_REQUEST,
    grpc.StatusCode.NOT_FOUND: ExitCode.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.PRECONDITION,
    grpc.StatusCode.ABORTED: ExitCode.PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.DEADLINE,
}


def exit_code_for(code: grpc.StatusCode | None) -> ExitCode:
    """The exit code for a call that ended with status `code` (UNEXPECTED for unlisted codes)."""
    if code is None:
        return ExitCode.UNEXPECTED
    return STATUS_EXIT_CODES.get(code, ExitCode.UNEXPECTED)
