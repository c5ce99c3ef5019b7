"""The gRPC control service of the simulated kiosk (``hwd.sim.v1.Simulator``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from simulators.errors import SimDeviceError
from simulators.kiosk import SimKiosk

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Facts about the running simulator that GetStatus reports."""

    pid: int
    started: datetime
    endpoints_file: Path


class SimulatorControl(simulator_pb2_grpc.SimulatorServicer):
    """Serves GetStatus, Reset and Shutdown over one :class:`SimKiosk`."""

    def __init__(self, kiosk: SimKiosk, info: RunInfo, request_stop: Callable[[], None]) -> None:
        """:param request_stop: asks the process to stop; must return at once (the reply is sent
        while the server drains during its grace period).
        """
        self._kiosk = kiosk
        self._info = info
        self._request_stop = request_stop

    async def GetStatus(
        self,
        request: simulator_pb2.GetStatusRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.GetStatusRequest, simulator_pb2.GetStatusResponse],
    ) -> simulator_pb2.GetStatusResponse:
        """Report the process, its endpoints file, every device and the reset count."""
        response = simulator_pb2.GetStatusResponse(
            pid=self._info.pid,
            endpoints_file=str(self._info.endpoints_file),
            resets=self._kiosk.resets,
            devices=[
                simulator_pb2.SimDevice(name=view.name, kind=view.kind, endpoint=view.endpoint, state=view.state)
                for view in self._kiosk.devices()
            ],
        )
        response.started.FromDatetime(self._info.started)
        return response

    async def Reset(
        self,
        request: simulator_pb2.ResetRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.ResetRequest, simulator_pb2.ResetResponse],
    ) -> simulator_pb2.ResetResponse:
        """Reset every device; a device that fails gives INTERNAL naming it."""
        try:
            await self._kiosk.reset()
        except SimDeviceError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, str(exc))
        log.info("simulated kiosk reset (%d so far)", self._kiosk.resets)
        return simulator_pb2.ResetResponse()

    async def Shutdown(
        self,
        request: simulator_pb2.ShutdownRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.ShutdownRequest, simulator_pb2.ShutdownResponse],
    ) -> simulator_pb2.ShutdownResponse:
        """Ask the process to stop and reply; the server's grace period lets the reply out."""
        log.info("shutdown requested over the control service")
        self._request_stop()
        return simulator_pb2.ShutdownResponse()
