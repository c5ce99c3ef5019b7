"""Reaching the daemon and the simulator: socket lookup, channels, and the one gRPC error report."""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hwd.cli.exitcodes import ExitCode, exit_code_for
from hwd.cli.render import clean

ERROR_DOMAIN = "hwd.dev"
TECH_SOCKET = "tech.sock"
DAEMON_HINT = "is hwd running? try `make run`"
SIMULATOR_HINT = "start one with `make run` or `hwd serve --simulated`"


class CliError(Exception):
    """A failure printed as ``hwd: <message>`` that ends the command with `exit_code`."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Peer:
    """A gRPC server to reach.

    :param what: how messages name it ("daemon", "simulator").
    :param target: the grpc target, e.g. ``unix:/run/hwd/tech.sock``.
    :param start_hint: what to do when it does not run.
    """

    what: str
    target: str
    start_hint: str

    def socket_path(self) -> Path | None:
        """The Unix socket of a ``unix:`` target, else None."""
        if not self.target.startswith("unix:"):
            return None
        rest = self.target.removeprefix("unix:")
        return Path("/" + rest.lstrip("/")) if rest.startswith("//") else Path(rest)


def resolve_socket_dir(socket_dir: str | None, config_file: str | None) -> Path:
    """The daemon's socket directory: `socket_dir` if given, else as the daemon finds it.

    That is: ``daemon.socket_dir`` of `config_file`, else ``$HWD_SOCKET_DIR``, else the default.

    :raises CliError: (CONFIG) when the configuration or the environment is invalid.
    """
    if socket_dir:
        return Path(socket_dir)
    from hwd.config import load_config  # pydantic is slow to import; only needed here
    from hwd.errors import ConfigError

    try:
        return load_config(Path(config_file) if config_file else None).socket_dir()
    except ConfigError as exc:
        raise CliError(exc.message, ExitCode.CONFIG) from None


def daemon_peer(socket_dir: Path) -> Peer:
    """The daemon's technician socket in `socket_dir`."""
    return Peer("daemon", f"unix:{socket_dir / TECH_SOCKET}", DAEMON_HINT)


def check_socket(peer: Peer) -> None:
    """Fails at once, without a timeout, when `peer`'s socket is missing or not ours to use.

    :raises CliError: UNREACHABLE for no socket, PERMISSION when the socket may not be opened.
    """
    path = peer.socket_path()
    if path is None:
        return
    prefix = f"cannot reach the {peer.what} at {path}"
    try:
        mode = path.stat().st_mode
    except PermissionError:
        raise CliError(f"{prefix}: permission denied on its directory", ExitCode.PERMISSION) from None
    except OSError:
        raise CliError(f"{prefix}: no socket ({peer.start_hint})", ExitCode.UNREACHABLE) from None
    if not stat.S_ISSOCK(mode):
        raise CliError(f"{prefix}: not a socket", ExitCode.UNREACHABLE)
    if not os.access(path, os.R_OK | os.W_OK):
        hint = f"is your user in the group of {path.parent}?"
        raise CliError(f"{prefix}: permission denied ({hint})", ExitCode.PERMISSION)


def wait_connected(channel: grpc.Channel, peer: Peer, timeout: float) -> None:
    """Waits until `channel` is connected, so that a later DEADLINE_EXCEEDED means a slow call.

    :raises CliError: UNREACHABLE when the connection is refused or not made within `timeout`.
    """
    settled = threading.Event()
    states: list[grpc.ChannelConnectivity] = []
    final = {grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE}

    def on_change(state: grpc.ChannelConnectivity) -> None:
        if state in final:
            states.append(state)
            settled.set()

    channel.subscribe(on_change, try_to_connect=True)
    try:
        connected = settled.wait(timeout)
    finally:
        channel.unsubscribe(on_change)
    prefix = f"cannot reach the {peer.what} at {peer.target.removeprefix('unix:')}"
    if not connected:
        raise CliError(f"{prefix}: no connection within {timeout:g}s", ExitCode.UNREACHABLE)
    if states[0] is not grpc.ChannelConnectivity.READY:
        raise CliError(f"{prefix}: connection refused ({peer.start_hint})", ExitCode.UNREACHABLE)


@contextmanager
def open_channel(peer: Peer, timeout: float, max_receive_bytes: int | None = None) -> Iterator[grpc.Channel]:
    """A connected channel to `peer`, closed on exit.

    :param timeout: seconds allowed to connect.
    :param max_receive_bytes: the largest answer accepted (grpc's default, 4 MiB, when None).
    :raises CliError: when the peer cannot be reached (see :func:`check_socket`, :func:`wait_connected`).
    """
    check_socket(peer)
    options = [] if max_receive_bytes is None else [("grpc.max_receive_message_length", max_receive_bytes)]
    with grpc.insecure_channel(peer.target, options) as channel:
        wait_connected(channel, peer, timeout)
        yield channel


_Response = TypeVar("_Response")


def unless_unimplemented(call: Callable[[], _Response]) -> _Response | None:
    """Runs one rpc; None when the daemon does not serve it (UNIMPLEMENTED: this kiosk lacks the device)."""
    try:
        return call()
    except grpc.RpcError as exc:
        if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return None
        raise


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The google.rpc.ErrorInfo detail of a failed call, or None when it carries none."""
    if not isinstance(error, grpc.Call):
        return None
    try:
        status: Any = rpc_status.from_call(error)
    except ValueError:  # the rich status contradicts the call's code: ignore the details
        return None
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def report_rpc_error(error: grpc.RpcError, out: TextIO | None = None) -> ExitCode:
    """Prints a failed call as ``hwd: CODE REASON: message`` plus device, hint and metadata lines.

    :returns: the exit code for the call's status (see :mod:`hwd.cli.exitcodes`).
    """
    out = out or sys.stderr
    code = error.code() if isinstance(error, grpc.Call) else None
    message = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    info = error_info(error)
    name = code.name if code is not None else "UNKNOWN"
    reason = f" {info.reason}" if info is not None and info.reason else ""
    lines = [f"hwd: {name}{reason}: {clean(message)}"]
    if info is not None:
        lines += _info_lines(info)
    print("\n".join(lines), file=out)
    return exit_code_for(code)


def _info_lines(info: error_details_pb2.ErrorInfo) -> list[str]:
    meta = dict(info.metadata)
    pairs = [("device", meta.pop("device", "")), ("hint", meta.pop("recovery_hint", ""))]
    pairs += sorted(meta.items())
    if info.domain and info.domain != ERROR_DOMAIN:
        pairs.append(("domain", info.domain))
    return [f"  {key}: {clean(value)}" for key, value in pairs if value]
