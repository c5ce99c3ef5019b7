"""The floor: a bare grpc.aio server offering only grpc.health.v1.Health/Check on a Unix socket.

Run as ``python -m bench.floor SOCKET``. It prints ``floor serving SOCKET`` once it serves and
stops on SIGTERM. No interceptor, no options, no other service: what pure-Python grpc.aio costs,
so the latency report can show what hwd adds on top.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc


class BareHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]  # grpc_health ships no stubs
    """Answers every Check with SERVING."""

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def serve(socket: Path) -> None:
    """Serves until SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(BareHealth(), server)
    socket.unlink(missing_ok=True)
    server.add_insecure_port(f"unix:{socket}")
    await server.start()
    print(f"floor serving {socket}", flush=True)
    await stop.wait()
    await server.stop(1.0)
    socket.unlink(missing_ok=True)


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1])))
