"""The two gRPC servers (ui.sock and tech.sock): options, health, reflection, socket files."""

from __future__ import annotations

import grp
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from hwd.config import GrpcConfig
from hwd.rpc.auth import TECH, UI
from hwd.rpc.camera import CameraServicer
from hwd.rpc.edge import EdgeInterceptor
from hwd.rpc.kiosk import KioskServicer
from hwd.rpc.pb.hwd.v1 import (
    binlock_pb2,
    binlock_pb2_grpc,
    camera_pb2,
    camera_pb2_grpc,
    carousel_pb2,
    carousel_pb2_grpc,
    kiosk_pb2,
    kiosk_pb2_grpc,
    phones_pb2,
    phones_pb2_grpc,
    printer_pb2,
    printer_pb2_grpc,
)
from hwd.rpc.peripherals import BinLockServicer, CarouselServicer
from hwd.rpc.phones import PhonesServicer
from hwd.rpc.printer import PrinterServicer
from hwd.services.binlock import BinLockService
from hwd.services.camera import CameraService
from hwd.services.carousel import CarouselService
from hwd.services.kiosk import KioskService
from hwd.services.phones import PhonesService
from hwd.services.printer import PrinterService

log = logging.getLogger(__name__)

KIOSK = kiosk_pb2.DESCRIPTOR.services_by_name["Kiosk"].full_name
CAROUSEL = carousel_pb2.DESCRIPTOR.services_by_name["Carousel"].full_name
BINLOCK = binlock_pb2.DESCRIPTOR.services_by_name["BinLock"].full_name
PRINTER = printer_pb2.DESCRIPTOR.services_by_name["Printer"].full_name
CAMERA = camera_pb2.DESCRIPTOR.services_by_name["Camera"].full_name
PHONES = phones_pb2.DESCRIPTOR.services_by_name["Phones"].full_name


@dataclass(frozen=True)
class Service:
    """One gRPC service to serve on both sockets: its full name and how to add it to a server."""

    name: str
    add: Callable[[aio.Server], None]


def services(
    kiosk: KioskService,
    carousel: CarouselService | None = None,
    lock: BinLockService | None = None,
    printer: PrinterService | None = None,
    *,
    phones: PhonesService | None = None,
    camera: CameraService | None = None,
) -> list[Service]:
    """The services of this kiosk: Kiosk always, the device services when the kiosk has the device."""
    kiosk_servicer = KioskServicer(kiosk)
    out = [Service(KIOSK, lambda s: kiosk_pb2_grpc.add_KioskServicer_to_server(kiosk_servicer, s))]
    if carousel is not None:
        carousel_servicer = CarouselServicer(carousel)
        out.append(Service(CAROUSEL, lambda s: carousel_pb2_grpc.add_CarouselServicer_to_server(carousel_servicer, s)))
    if lock is not None:
        lock_servicer = BinLockServicer(lock)
        out.append(Service(BINLOCK, lambda s: binlock_pb2_grpc.add_BinLockServicer_to_server(lock_servicer, s)))
    if printer is not None:
        printer_servicer = PrinterServicer(printer)
        out.append(Service(PRINTER, lambda s: printer_pb2_grpc.add_PrinterServicer_to_server(printer_servicer, s)))
    if phones is not None:
        phones_servicer = PhonesServicer(phones)
        out.append(Service(PHONES, lambda s: phones_pb2_grpc.add_PhonesServicer_to_server(phones_servicer, s)))
    if camera is not None:
        camera_servicer = CameraServicer(camera)
        out.append(Service(CAMERA, lambda s: camera_pb2_grpc.add_CameraServicer_to_server(camera_servicer, s)))
    return out


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Servers:
    """Both servers and the shared health servicer."""

    health: HealthServicer
    names: tuple[str, ...]
    by_role: dict[str, aio.Server] = field(default_factory=dict)
    sockets: dict[str, Path] = field(default_factory=dict)

    async def set_health(self, serving: bool) -> None:
        """Marks the whole daemon and every service SERVING or NOT_SERVING."""
        for name in ("", *self.names):
            await self.health.set(name, SERVING if serving else NOT_SERVING)

    async def stop(self, grace: float) -> None:
        """Stops both servers, letting calls in flight finish for ``grace`` seconds, and removes the sockets."""
        for server in self.by_role.values():
            await server.stop(grace)
        for path in self.sockets.values():
            path.unlink(missing_ok=True)


def _server(role: str, cfg: GrpcConfig) -> aio.Server:
    size = cfg.max_message_bytes
    return aio.server(
        interceptors=[EdgeInterceptor(role)],
        options=[
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
    )


async def start_servers(
    served: list[Service], socket_dir: Path, cfg: GrpcConfig, tech_group: str | None = None
) -> Servers:
    """Starts ui.sock and tech.sock in ``socket_dir`` (created 0750 when missing).

    Reflection is offered on tech.sock only. Health starts NOT_SERVING; call
    :meth:`Servers.set_health` once the daemon is ready.
    """
    socket_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    names = tuple(service.name for service in served)
    servers = Servers(HealthServicer(), names)
    await servers.set_health(False)
    for role in (UI, TECH):
        server = _server(role, cfg)
        for service in served:
            service.add(server)
        health_pb2_grpc.add_HealthServicer_to_server(servers.health, server)
        if role == TECH:
            reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        path = socket_dir / f"{role}.sock"
        path.unlink(missing_ok=True)  # a stale socket of a crashed daemon; the state-dir lock guards live ones
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        os.chmod(path, 0o660)
        servers.by_role[role] = server
        servers.sockets[role] = path
    if tech_group:
        os.chown(servers.sockets[TECH], -1, grp.getgrnam(tech_group).gr_gid)
    return servers
