"""The gRPC control service of the simulated kiosk (``hwd.sim.v1.Simulator``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from simulators.adb.ports import PhonePorts, PortTaken, Profile, UnknownPort, UnknownProfile, platform_of
from simulators.adb.watch import PhoneInfo
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


def profile_message(profile: Profile) -> simulator_pb2.PhoneProfile:
    """The protobuf form of one phone profile (Android or iPhone)."""
    return simulator_pb2.PhoneProfile(
        name=profile.name,
        platform=platform_of(profile),
        manufacturer=profile.manufacturer,
        model=profile.model,
        os_version=profile.os_version,
        description=profile.description,
    )


def phone_message(phone: PhoneInfo) -> simulator_pb2.SimPhone:
    """The protobuf form of one plugged phone."""
    return simulator_pb2.SimPhone(
        port=phone.port,
        profile=phone.profile,
        platform=phone.platform,
        serial=phone.serial,
        endpoint=phone.endpoint,
        state=phone.state,
    )


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
    """Serves the control service over one :class:`SimKiosk`; the phone rpcs use its ``phones`` device."""

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

    def _ports(self) -> PhonePorts | None:
        """The kiosk's phone ports, if it has them."""
        try:
            device = self._kiosk.device(PhonePorts.name)
        except UnknownDevice:
            return None
        return device if isinstance(device, PhonePorts) else None

    async def _need_ports(self, context: grpc.aio.ServicerContext[Any, Any]) -> PhonePorts:
        ports = self._ports()
        if ports is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this simulated kiosk has no phone ports")
        return ports

    async def ListProfiles(
        self,
        request: simulator_pb2.ListProfilesRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.ListProfilesRequest, simulator_pb2.ListProfilesResponse],
    ) -> simulator_pb2.ListProfilesResponse:
        """Every phone profile, sorted by name (none when the kiosk has no phone ports)."""
        ports = self._ports()
        profiles = ports.profiles() if ports is not None else []
        return simulator_pb2.ListProfilesResponse(profiles=[profile_message(profile) for profile in profiles])

    async def PlugPhone(
        self,
        request: simulator_pb2.PlugPhoneRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.PlugPhoneRequest, simulator_pb2.PlugPhoneResponse],
    ) -> simulator_pb2.PlugPhoneResponse:
        """Plug a phone in: NOT_FOUND for an unknown profile or port, FAILED_PRECONDITION for a
        port taken (or all of them), INVALID_ARGUMENT for a bad trust answer or delay."""
        ports = await self._need_ports(context)
        try:
            phone = await ports.plug(request.profile, request.port, request.trust, request.trust_delay_s)
        except (UnknownProfile, UnknownPort) as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except PortTaken as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except SimDeviceError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        log.info("phone %s plugged into %s at %s", phone.profile, phone.port, phone.endpoint)
        return simulator_pb2.PlugPhoneResponse(phone=phone_message(phone))

    async def UnplugPhone(
        self,
        request: simulator_pb2.UnplugPhoneRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.UnplugPhoneRequest, simulator_pb2.UnplugPhoneResponse],
    ) -> simulator_pb2.UnplugPhoneResponse:
        """Unplug the phone on a port; NOT_FOUND when none is plugged there."""
        ports = await self._need_ports(context)
        try:
            phone = await ports.unplug(request.port)
        except UnknownPort as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        log.info("phone %s unplugged from %s", phone.profile, phone.port)
        return simulator_pb2.UnplugPhoneResponse()

    async def WatchPhones(
        self,
        request: simulator_pb2.WatchPhonesRequest,
        context: grpc.aio.ServicerContext[simulator_pb2.WatchPhonesRequest, simulator_pb2.PhoneChange],
    ) -> AsyncIterator[simulator_pb2.PhoneChange]:
        """Every plugged phone as attached, then each plug and unplug until the client leaves.

        A client that falls :data:`simulators.adb.watch.WATCH_CAPACITY` changes behind gets
        RESOURCE_EXHAUSTED; a kiosk without phone ports, FAILED_PRECONDITION.
        """
        ports = await self._need_ports(context)
        with ports.watch() as watch:
            while (change := await watch.next()) is not None:
                yield simulator_pb2.PhoneChange(attached=change.attached, phone=phone_message(change.phone))
            if watch.overflowed:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "the phone watch fell too far behind")
