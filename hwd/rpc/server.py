"""The two gRPC servers (ui.sock and tech.sock): options, health, reflection, socket files."""

from __future__ import annotations

import grp
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from hwd.config import GrpcConfig
from hwd.rpc.auth import TECH, UI
from hwd.rpc.edge import EdgeInterceptor
from hwd.rpc.kiosk import KioskServicer
from hwd.rpc.pb.hwd.v1 import kiosk_pb2, kiosk_pb2_grpc
from hwd.services.kiosk import KioskService

log = logging.getLogger(__name__)

SERVICES = (kiosk_pb2.DESCRIPTOR.services_by_name["Kiosk"].full_name,)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Servers:
    """Both servers and the shared health servicer."""

    health: HealthServicer
    by_role: dict[str, aio.Server] = field(default_factory=dict)
    sockets: dict[str, Path] = field(default_factory=dict)

    async def set_health(self, serving: bool) -> None:
        """Marks the whole daemon and every service SERVING or NOT_SERVING."""
        for name in ("", *SERVICES):
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
    kiosk: KioskService, socket_dir: Path, cfg: GrpcConfig, tech_group: str | None = None
) -> Servers:
    """Starts ui.sock and tech.sock in ``socket_dir`` (created 0750 when missing).

    Reflection is offered on tech.sock only. Health starts NOT_SERVING; call
    :meth:`Servers.set_health` once the daemon is ready.
    """
    socket_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    servers = Servers(HealthServicer())
    await servers.set_health(False)
    servicer = KioskServicer(kiosk)
    for role in (UI, TECH):
        server = _server(role, cfg)
        kiosk_pb2_grpc.add_KioskServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(servers.health, server)
        if role == TECH:
            reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
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
