"""The hwd.v1.Carousel and hwd.v1.BinLock servicers: protobuf in, service calls, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from hwd.model import CableTest, CarouselState, Connector, LockState
from hwd.rpc.auth import TECH, current_role, lease_id
from hwd.rpc.convert import device_status
from hwd.rpc.pb.hwd.v1 import binlock_pb2, binlock_pb2_grpc, carousel_pb2, carousel_pb2_grpc
from hwd.services.binlock import BinLockService
from hwd.services.carousel import CarouselService

Ctx = aio.ServicerContext[Any, Any]


def connector_pb(connector: Connector) -> carousel_pb2.Connector.ValueType:
    """A model connector as the proto enum (EMPTY and UNKNOWN are UNSPECIFIED)."""
    if connector in (Connector.EMPTY, Connector.UNKNOWN):
        return carousel_pb2.CONNECTOR_UNSPECIFIED
    return carousel_pb2.Connector.Value(f"CONNECTOR_{connector.name}")


def cable_test_pb(result: CableTest) -> carousel_pb2.CableTestResult.ValueType:
    """A model cable test as the proto enum (NEVER is UNSPECIFIED)."""
    if result is CableTest.NEVER:
        return carousel_pb2.CABLE_TEST_RESULT_UNSPECIFIED
    return carousel_pb2.CableTestResult.Value(f"CABLE_TEST_RESULT_{result.name}")


def _connector(value: carousel_pb2.Connector.ValueType) -> Connector:
    """The model connector of a request's enum value; UNSPECIFIED or unknown values are EMPTY (refused later)."""
    if value == carousel_pb2.CONNECTOR_UNSPECIFIED or value not in carousel_pb2.Connector.values():
        return Connector.EMPTY
    return Connector[carousel_pb2.Connector.Name(value).removeprefix("CONNECTOR_")]


class CarouselServicer(carousel_pb2_grpc.CarouselServicer):
    """Serves the Carousel service from a :class:`CarouselService`."""

    def __init__(self, carousel: CarouselService) -> None:
        self._carousel = carousel

    def _snapshot(self, st: CarouselState | None) -> carousel_pb2.GetCarouselStatusResponse:
        c = self._carousel
        msg = carousel_pb2.GetCarouselStatusResponse(status=device_status(c.registry, c.name), controller=c.identity)
        reported = st.connectors if st else ()
        for n, connector in enumerate(c.slot_map(st)):
            msg.slots.add(
                index=n,
                connector=connector_pb(connector),
                reported_connector=connector_pb(reported[n] if n < len(reported) else Connector.UNKNOWN),
                cable_test=cable_test_pb(c.cable_tests.get(n, CableTest.NEVER)),
            )
        if st is not None:
            msg.homed, msg.moving = st.homed, st.moving
            if st.current_slot is not None:
                msg.current_slot = st.current_slot
            if st.target_slot is not None:
                msg.target_slot = st.target_slot
        return msg

    async def GetStatus(
        self, request: carousel_pb2.GetCarouselStatusRequest, context: Ctx
    ) -> carousel_pb2.GetCarouselStatusResponse:
        return self._snapshot(self._carousel.current)

    async def Home(self, request: carousel_pb2.HomeRequest, context: Ctx) -> carousel_pb2.HomeResponse:
        await self._carousel.home(request.request_id, current_role.get(), lease_id(context.invocation_metadata()))
        return carousel_pb2.HomeResponse(carousel=self._snapshot(self._carousel.current))

    async def Select(self, request: carousel_pb2.SelectRequest, context: Ctx) -> carousel_pb2.SelectResponse:
        which = request.WhichOneof("target")
        outcome = await self._carousel.select(
            request.request_id, current_role.get(), lease_id(context.invocation_metadata()),
            connector=_connector(request.connector) if which == "connector" else None,
            slot=request.slot if which == "slot" else None,
        )  # fmt: skip
        return carousel_pb2.SelectResponse(
            slot=outcome["slot"], connector=connector_pb(Connector[outcome["connector"]])
        )

    async def TestCable(self, request: carousel_pb2.TestCableRequest, context: Ctx) -> carousel_pb2.TestCableResponse:
        outcome = await self._carousel.test_cable(
            request.request_id, current_role.get(), lease_id(context.invocation_metadata()), request.slot
        )
        return carousel_pb2.TestCableResponse(result=cable_test_pb(CableTest[outcome["result"]]))

    async def WatchStatus(
        self, request: carousel_pb2.WatchCarouselStatusRequest, context: Ctx
    ) -> AsyncIterator[carousel_pb2.GetCarouselStatusResponse]:
        async for st in self._carousel.watch():
            yield self._snapshot(st)


class BinLockServicer(binlock_pb2_grpc.BinLockServicer):
    """Serves the BinLock service from a :class:`BinLockService`."""

    def __init__(self, lock: BinLockService) -> None:
        self._lock = lock

    def _snapshot(self, st: LockState | None) -> binlock_pb2.GetLockStatusResponse:
        b = self._lock
        msg = binlock_pb2.GetLockStatusResponse(status=device_status(b.registry, b.name), controller=b.identity)
        if st is not None:
            msg.bolt_extended, msg.door_closed, msg.unlocked = st.bolt_extended, st.door_closed, st.unlock_output
            msg.tamper, msg.forced = st.tamper, st.forced
            msg.relock_remaining_s, msg.door_open_s = st.relock_remaining_s, st.door_open_s
        return msg

    async def GetStatus(
        self, request: binlock_pb2.GetLockStatusRequest, context: Ctx
    ) -> binlock_pb2.GetLockStatusResponse:
        return self._snapshot(self._lock.current)

    async def Unlock(self, request: binlock_pb2.UnlockRequest, context: Ctx) -> binlock_pb2.UnlockResponse:
        relock = request.relock_after.seconds + (1 if request.relock_after.nanos else 0)
        await self._lock.unlock(
            request.request_id, current_role.get(), lease_id(context.invocation_metadata()), request.reason, relock
        )
        return binlock_pb2.UnlockResponse(lock=self._snapshot(self._lock.current))

    async def Lock(self, request: binlock_pb2.LockRequest, context: Ctx) -> binlock_pb2.LockResponse:
        role = current_role.get()
        lease = lease_id(context.invocation_metadata())
        await self._lock.lock(request.request_id, role, lease, clear_alarm=role == TECH)
        return binlock_pb2.LockResponse(lock=self._snapshot(self._lock.current))

    async def WatchStatus(
        self, request: binlock_pb2.WatchLockStatusRequest, context: Ctx
    ) -> AsyncIterator[binlock_pb2.GetLockStatusResponse]:
        async for st in self._lock.watch():
            yield self._snapshot(st)
