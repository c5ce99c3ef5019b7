"""The running simulated kiosk: control server, devices and endpoints file, up and down together."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2_grpc
from simulators.control import RunInfo, SimulatorControl
from simulators.endpoints import endpoints_document, write_atomically
from simulators.errors import StartupRefused
from simulators.kiosk import SimKiosk

log = logging.getLogger(__name__)

#: How long in-flight control calls (a Shutdown reply, say) may take to finish on stop.
STOP_GRACE_S = 1.0


class SimulatorRuntime:
    """Brings the control server, the kiosk's devices and the endpoints file up and down.

    Construction does no I/O. The caller makes sure ``socket_path`` is free (see
    :func:`simulators.workdir.clear_control_socket`) before :meth:`start`.
    """

    def __init__(
        self, kiosk: SimKiosk, socket_path: Path, endpoints_file: Path, request_stop: Callable[[], None]
    ) -> None:
        """:param socket_path: absolute path of the control socket to create.

        :param endpoints_file: absolute path of the endpoints file to write.
        :param request_stop: called when a client asks for Shutdown; must return at once.
        """
        self._kiosk = kiosk
        self._socket_path = socket_path
        self._endpoints_file = endpoints_file
        self._request_stop = request_stop
        self._server: grpc.aio.Server | None = None
        self._wrote_endpoints = False
        self._bound = False

    @property
    def control_target(self) -> str:
        """The gRPC target of the control service, ``unix:/abs/path``."""
        return f"unix:{self._socket_path}"

    async def start(self) -> dict[str, Any]:
        """Serve the control service, start every device, then write the endpoints file.

        If this raises, call :meth:`stop` to release whatever was already started.

        :returns: the endpoints document that was written.
        :raises simulators.errors.SimDeviceError: a device failed to start.
        :raises simulators.errors.StartupRefused: the control socket or the endpoints file could
            not be created.
        """
        now = datetime.now(UTC)
        started = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as precise as the file says
        info = RunInfo(pid=os.getpid(), started=started, endpoints_file=self._endpoints_file)
        self._server = grpc.aio.server()
        simulator_pb2_grpc.add_SimulatorServicer_to_server(
            SimulatorControl(self._kiosk, info, self._request_stop), self._server
        )
        try:
            self._server.add_insecure_port(self.control_target)
        except RuntimeError as exc:  # grpc reports a failed bind this way
            raise StartupRefused(f"cannot serve the control service on {self.control_target}: {exc}") from exc
        self._bound = True
        await self._server.start()
        log.info("control service on %s", self.control_target)
        await self._kiosk.start()
        document = endpoints_document(info.pid, started, self.control_target, self._kiosk.devices())
        try:
            write_atomically(self._endpoints_file, document)
        except OSError as exc:
            raise StartupRefused(f"cannot write the endpoints file {self._endpoints_file}: {exc}") from exc
        self._wrote_endpoints = True
        return document

    async def stop(self) -> None:
        """Withdraw the endpoints file, stop the devices, then the server; remove the socket.

        Safe after a failed or partial :meth:`start` and safe to call twice. The endpoints file
        goes first so nobody reads endpoints that are about to close.
        """
        if self._wrote_endpoints:
            with contextlib.suppress(FileNotFoundError):
                self._endpoints_file.unlink()
            self._wrote_endpoints = False
        await self._kiosk.stop()
        if self._server is not None:
            await self._server.stop(STOP_GRACE_S)
            self._server = None
        if self._bound:
            with contextlib.suppress(FileNotFoundError):
                self._socket_path.unlink()
            self._bound = False
