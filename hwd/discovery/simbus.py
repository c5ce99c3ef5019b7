"""Phones on the simulated kiosk's ports, from its control service's ``WatchPhones`` stream.

The simulated kiosk has no USB: it tells the daemon what is plugged in, as udev would on a real
kiosk, and its phones answer ADB (or usbmuxd) on TCP endpoints.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import grpc

from hwd.errors import DeviceUnavailable
from hwd.model.phones import Platform, PortEvent
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024  # one PhoneChange is a few hundred bytes
MAX_TEXT = 256  # longest port, serial, endpoint or profile name kept
HINT = "The daemon restarts the stream; if it keeps failing, check the simulated kiosk (`hwd sim status`)."
PLATFORMS = {"android": Platform.ANDROID, "ios": Platform.IOS}


def port_event(change: simulator_pb2.PhoneChange) -> PortEvent | None:
    """The PortEvent of one simulator change, or None when it names no port.

    A platform the simulator names but hwd does not know gives ``platform=None`` (not a phone).
    """
    phone = change.phone
    port = phone.port[:MAX_TEXT]
    if not port:
        return None
    if not change.attached:
        return PortEvent(port, attached=False)
    return PortEvent(
        port=port,
        attached=True,
        platform=PLATFORMS.get(phone.platform.lower()),
        serial=phone.serial[:MAX_TEXT],
        endpoint=phone.endpoint[:MAX_TEXT],
        description=f"simulated {phone.profile[:MAX_TEXT]}",
    )


class SimulatorPhones:
    """Phones plugged into the simulated kiosk.

    :param control_target: the simulator's control service, e.g. ``"unix:/run/hwd/sim/control.sock"``.
    """

    def __init__(self, control_target: str) -> None:
        self._target = control_target

    async def events(self) -> AsyncGenerator[PortEvent, None]:
        """Every phone plugged in now as attached, then each plug and unplug as it happens.

        :raises DeviceUnavailable: when the stream cannot be opened, breaks, or ends (the
            simulator stopped); a supervisor restarts it, and the new stream lists the phones afresh.
        """
        options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        async with grpc.aio.insecure_channel(self._target, options=options) as channel:
            call = simulator_pb2_grpc.SimulatorStub(channel).WatchPhones(simulator_pb2.WatchPhonesRequest())
            try:
                async for change in call:
                    event = port_event(change)
                    if event is None:
                        log.warning("simulated kiosk: a phone change without a port, ignored")
                        continue
                    yield event
            except grpc.aio.AioRpcError as exc:
                raise DeviceUnavailable(
                    f"the simulated kiosk's phone stream broke: {exc.code().name}: {exc.details()}",
                    device="simulator",
                    hint=HINT,
                ) from None
            finally:
                call.cancel()
        raise DeviceUnavailable("the simulated kiosk ended its phone stream", device="simulator", hint=HINT)
