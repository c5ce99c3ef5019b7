"""The gRPC control service of the simulated kiosk (``hwd.sim.v1.Simulator``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from simulators.device import DeviceView
from simulators.errors import SimDeviceError
from simulators.kiosk import SimKiosk, UnknownDevice

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Facts about the running simulator that GetStatus reports."""

    pid: int
    started: datetime
    endpoints_file: Path


def device_message(view: DeviceView) -> simulator_pb2.SimDevice:
    """The protobuf form of one device snapshot."""
    return simulator_pb2.SimDevice(
        name=view.name,
        kind=view.kind,
        endpoint=view.endpoint,
        state=view.state,
        faults=view.faults,
        artifacts=view.artifacts,
    )


class SimulatorControl(simulator_pb2_grpc.SimulatorServicer):
    """Serves GetStatus, Reset, Shutdown and Fault over one :class:`SimKiosk`."""

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
            devices=[device_message(view) for view in self._kiosk.devices()],
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

    async def Fault(
        self,
        request: simulator_pb2.FaultRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.FaultRequest, simulator_pb2.FaultResponse],
    ) -> simulator_pb2.FaultResponse:
        """Inject a fault into one device; NOT_FOUND for an unknown device, INVALID_ARGUMENT for a bad fault."""
        try:
            view = await self._kiosk.fault(request.device, request.fault, dict(request.params))
        except UnknownDevice as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except SimDeviceError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, str(exc))
        return simulator_pb2.FaultResponse(device=device_message(view))

    async def ListProfiles(
        self,
        request: simulator_pb2.ListProfilesRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.ListProfilesRequest, simulator_pb2.ListProfilesResponse],
    ) -> simulator_pb2.ListProfilesResponse:
        """This kiosk has no phone profiles yet."""
        return simulator_pb2.ListProfilesResponse()

    async def PlugPhone(
        self,
        request: simulator_pb2.PlugPhoneRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.PlugPhoneRequest, simulator_pb2.PlugPhoneResponse],
    ) -> simulator_pb2.PlugPhoneResponse:
        """No profile exists yet, so every profile is unknown."""
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no phone profile {request.profile!r}")

    async def UnplugPhone(
        self,
        request: simulator_pb2.UnplugPhoneRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.UnplugPhoneRequest, simulator_pb2.UnplugPhoneResponse],
    ) -> simulator_pb2.UnplugPhoneResponse:
        """No phone can be plugged yet."""
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no phone on port {request.port!r}")

    async def WatchPhones(
        self,
        request: simulator_pb2.WatchPhonesRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.WatchPhonesRequest, simulator_pb2.PhoneChange],
    ) -> AsyncIterator[simulator_pb2.PhoneChange]:
        """No phones: the stream stays open and empty until the client leaves."""
        await asyncio.Event().wait()
        yield simulator_pb2.PhoneChange()  # never reached
