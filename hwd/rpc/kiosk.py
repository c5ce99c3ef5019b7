"""The hwd.v1.Kiosk servicer: protobuf in, KioskService calls, protobuf out."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from hwd.rpc.auth import current_role
from hwd.rpc.convert import event_to_pb, lease_to_pb, status_to_pb, ts
from hwd.rpc.pb.hwd.v1 import common_pb2, kiosk_pb2, kiosk_pb2_grpc
from hwd.services.kiosk import KioskService

Ctx = aio.ServicerContext[Any, Any]


class KioskServicer(kiosk_pb2_grpc.KioskServicer):
    """Serves the Kiosk service from a :class:`KioskService`."""

    def __init__(self, kiosk: KioskService) -> None:
        self._kiosk = kiosk
        # Every live subscriber sends the same events: convert each one once, not once per subscriber.
        self._event_pb = functools.lru_cache(maxsize=1024)(event_to_pb)

    async def GetStatus(self, request: kiosk_pb2.GetStatusRequest, context: Ctx) -> kiosk_pb2.GetStatusResponse:
        s = self._kiosk.status()
        return kiosk_pb2.GetStatusResponse(
            daemon=status_to_pb(s.daemon),
            devices=[status_to_pb(d) for d in s.devices],
            version=s.version,
            started=ts(s.started_ns),
            last_sequence=s.last_sequence,
            simulated=s.simulated,
            leases=[lease_to_pb(lease, reveal_id=False) for lease in s.leases],
        )

    async def WatchEvents(self, request: kiosk_pb2.WatchEventsRequest, context: Ctx) -> AsyncIterator[common_pb2.Event]:
        async for event in self._kiosk.watch(request.after_sequence):
            yield self._event_pb(event)

    async def AcquireLease(
        self, request: kiosk_pb2.AcquireLeaseRequest, context: Ctx
    ) -> kiosk_pb2.AcquireLeaseResponse:
        lease = await self._kiosk.leases.acquire(
            request.device, request.holder, request.ttl.ToTimedelta().total_seconds()
        )
        return kiosk_pb2.AcquireLeaseResponse(lease=lease_to_pb(lease, reveal_id=True))

    async def RenewLease(self, request: kiosk_pb2.RenewLeaseRequest, context: Ctx) -> kiosk_pb2.RenewLeaseResponse:
        lease = await self._kiosk.leases.renew(request.lease_id, request.ttl.ToTimedelta().total_seconds())
        return kiosk_pb2.RenewLeaseResponse(lease=lease_to_pb(lease, reveal_id=True))

    async def ReleaseLease(
        self, request: kiosk_pb2.ReleaseLeaseRequest, context: Ctx
    ) -> kiosk_pb2.ReleaseLeaseResponse:
        await self._kiosk.leases.release(request.lease_id)
        return kiosk_pb2.ReleaseLeaseResponse()

    async def AddNote(self, request: kiosk_pb2.AddNoteRequest, context: Ctx) -> kiosk_pb2.AddNoteResponse:
        seq = await self._kiosk.add_note(request.request_id, request.text, request.author, current_role.get())
        return kiosk_pb2.AddNoteResponse(sequence=seq)
