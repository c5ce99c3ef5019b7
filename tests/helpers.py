"""Test helpers: an in-process daemon, gRPC stubs and ErrorInfo reading."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.rpc.error_details_pb2 import ErrorInfo
from grpc_status import rpc_status

from hwd.config import load_config
from hwd.daemon import Daemon
from hwd.rpc.pb.hwd.v1 import kiosk_pb2_grpc


def error_info(err: grpc.RpcError) -> ErrorInfo:
    """The ErrorInfo detail of a failed call."""
    status = rpc_status.from_call(err)
    assert status is not None, f"no status details in {err}"
    info = ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


@dataclass
class Running:
    """A daemon running in the test's event loop."""

    daemon: Daemon
    socket_dir: Path
    state_dir: Path

    def channel(self, role: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"unix:{self.socket_dir / (role + '.sock')}")

    def kiosk(self, channel: grpc.aio.Channel) -> kiosk_pb2_grpc.KioskStub:
        return kiosk_pb2_grpc.KioskStub(channel)


@contextlib.asynccontextmanager
async def running_daemon(tmp: Path, **sections: dict[str, Any]) -> AsyncIterator[Running]:
    """Starts a daemon on sockets and a journal under ``tmp``; stops it on exit."""
    socket_dir, state_dir = tmp / "run", tmp / "state"
    cfg = load_config(
        None, env={}, overrides={"daemon": {"socket_dir": socket_dir, "state_dir": state_dir}, **sections}
    )
    daemon = Daemon(cfg, simulated=False)
    task = asyncio.create_task(daemon.run(handle_signals=False))
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    try:
        yield Running(daemon, socket_dir, state_dir)
    finally:
        daemon.stopping.set()
        await task
