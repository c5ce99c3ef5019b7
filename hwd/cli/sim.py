"""`hwd sim ...`: the simulated kiosk's control service (hwd.sim.v1.Simulator).

The simulator is found through the endpoints file it publishes. Each subcommand is one entry
of :data:`SIM_COMMANDS`: its help, its arguments, the call and the human rendering.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from hwd.cli import phones
from hwd.cli.camera import add_sim_camera_parsers, call_sim_camera
from hwd.cli.client import SIMULATOR_HINT, CliError, Peer, open_channel, resolve_socket_dir
from hwd.cli.exitcodes import ExitCode
from hwd.cli.render import clean, fields, table, timestamp, to_json
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc

ENDPOINTS_ENV = "HWD_SIM_ENDPOINTS"
SimStub = simulator_pb2_grpc.SimulatorStub


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True)
class SimCommand:
    """One `hwd sim NAME` subcommand.

    :param help: one line for `hwd sim --help`.
    :param call: makes the call; gets the stub, the parsed arguments and the deadline in seconds.
    :param render: the human form of the response (--json prints the response itself).
    :param add_arguments: adds the subcommand's own arguments to its parser.
    :param render_json: the --json form, when it is not the response itself.
    :param add_actions: adds subcommands of its own (``hwd sim camera place ...``), given the common options.
    """

    help: str
    call: Callable[[SimStub, argparse.Namespace, float], Message]
    render: Callable[[Any], str]
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    render_json: Callable[[Any], str] | None = None
    add_actions: Callable[[argparse.ArgumentParser, list[argparse.ArgumentParser]], None] | None = None


def render_sim_status(status: simulator_pb2.GetStatusResponse) -> str:
    """The simulator's pid, start time, endpoints file, reset count and device table."""
    header = fields(
        [
            ("pid", str(status.pid)),
            ("started", timestamp(status.started)),
            ("endpoints file", status.endpoints_file),
            ("resets", str(status.resets)),
        ]
    )
    rows = [(d.name, d.kind, d.endpoint, d.state, ",".join(d.faults)) for d in status.devices]
    return "\n".join([header, "", table(("NAME", "KIND", "ENDPOINT", "STATE", "FAULTS"), rows)])


class _KeyValues(argparse.Action):
    """Collects `KEY=VALUE` words into a dict; a malformed word or a repeated key is a usage error."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        params: dict[str, str] = {}
        for pair in values or []:
            key, sep, value = str(pair).partition("=")
            if not sep or not key:
                parser.error(f"fault parameter {pair!r} is not KEY=VALUE")
            if key in params:
                parser.error(f"fault parameter {key!r} given twice")
            params[key] = value
        setattr(namespace, self.dest, params)


def _fault_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", metavar="DEVICE", help="device name, as in `hwd sim status`")
    parser.add_argument("fault", metavar="FAULT", help="fault or action, e.g. jam, unplug, open-door")
    parser.add_argument(
        "params", metavar="KEY=VALUE", nargs="*", action=_KeyValues, help="fault parameters, e.g. seconds=5"
    )
    parser.add_argument("--port", metavar="PORT", help="the phone's port, for `hwd sim fault phone FAULT --port P`")


# Short names `hwd sim fault` accepts for simulated devices.
DEVICE_ALIASES = {"phone": "phones"}


def _call_fault(stub: SimStub, args: argparse.Namespace, timeout: float) -> simulator_pb2.FaultResponse:
    params = {**args.params, **({"port": args.port} if args.port else {})}
    device = DEVICE_ALIASES.get(args.device, args.device)
    request = simulator_pb2.FaultRequest(device=device, fault=args.fault, params=params)
    response: simulator_pb2.FaultResponse = stub.Fault(request, timeout=timeout)
    return response


def render_fault(response: simulator_pb2.FaultResponse) -> str:
    """`NAME: STATE` of the device after the fault."""
    return f"{clean(response.device.name)}: {clean(response.device.state)}"


PRINTER = "printer"


def receipts(status: simulator_pb2.GetStatusResponse) -> list[str]:
    """The PNG files of the receipts the simulated printer cut, oldest first.

    :raises CliError: (BAD_REQUEST) the simulator has no device called "printer".
    """
    printer = next((device for device in status.devices if device.name == PRINTER), None)
    if printer is None:
        raise CliError("the simulated kiosk has no printer", ExitCode.BAD_REQUEST)
    return list(printer.artifacts)


def render_receipts(status: simulator_pb2.GetStatusResponse) -> str:
    """One receipt path per line (nothing when none was printed)."""
    return "\n".join(clean(path) for path in receipts(status))


SIM_COMMANDS: dict[str, SimCommand] = {
    "status": SimCommand(
        "show the simulated devices and their endpoints",
        lambda stub, _args, timeout: stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=timeout),
        render_sim_status,
    ),
    "reset": SimCommand(
        "put every simulated device back to its initial state",
        lambda stub, _args, timeout: stub.Reset(simulator_pb2.ResetRequest(), timeout=timeout),
        lambda _response: "simulator reset: every device is back to its initial state",
    ),
    "fault": SimCommand(
        "inject a fault into a simulated device (jam, unplug, open-door ...) and show its new state",
        _call_fault,
        render_fault,
        _fault_arguments,
    ),
    "receipts": SimCommand(
        "list the PNG images of the receipts the simulated printer cut, oldest first",
        lambda stub, _args, timeout: stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=timeout),
        render_receipts,
        render_json=lambda status: json.dumps({"receipts": receipts(status)}, indent=2),
    ),
    "camera": SimCommand(
        "set the simulated camera's scene: place or remove a phone, lights, or make the camera vanish",
        call_sim_camera,
        render_fault,
        add_actions=add_sim_camera_parsers,
    ),
    "profiles": SimCommand(
        "list the phone profiles the simulator can plug in", phones.call_profiles, phones.render_profiles
    ),
    "plug": SimCommand(
        "plug a simulated phone of a profile into a port; --trust says what the customer answers on the phone",
        phones.call_plug,
        phones.render_plug,
        phones.plug_arguments,
    ),
    "unplug": SimCommand(
        "unplug the simulated phone on a port",
        phones.call_unplug,
        lambda _response: "phone unplugged",
        phones.unplug_arguments,
    ),
    "shutdown": SimCommand(
        "stop the simulator process",
        lambda stub, _args, timeout: stub.Shutdown(simulator_pb2.ShutdownRequest(), timeout=timeout),
        lambda _response: "simulator stopping",
    ),
}


def add_sim_parsers(sim_parser: argparse.ArgumentParser, parents: list[argparse.ArgumentParser]) -> None:
    """Adds `--endpoints` and one subparser per :data:`SIM_COMMANDS` entry to `sim_parser`."""
    help_text = f"the simulator's endpoints file (default: ${ENDPOINTS_ENV}, else SOCKET_DIR/sim/endpoints.json)"
    sim_parser.add_argument("--endpoints", metavar="FILE", help=help_text)
    sub = sim_parser.add_subparsers(dest="sim_command", metavar="COMMAND", required=True)
    for name, command in SIM_COMMANDS.items():
        parser = sub.add_parser(name, help=command.help, description=command.help, parents=parents)
        parser.add_argument("--endpoints", metavar="FILE", default=argparse.SUPPRESS, help=help_text)
        command.add_arguments(parser)
        if command.add_actions is not None:
            command.add_actions(parser, parents)


def endpoints_path(args: argparse.Namespace) -> Path:
    """The endpoints file: --endpoints, else $HWD_SIM_ENDPOINTS, else SOCKET_DIR/sim/endpoints.json."""
    given = args.endpoints or os.environ.get(ENDPOINTS_ENV)
    if given:
        return Path(given)
    return resolve_socket_dir(args.socket_dir, args.config) / "sim" / "endpoints.json"


def read_control_target(path: Path) -> str:
    """The grpc target of the simulator's control service, from its endpoints file.

    :raises CliError: (UNREACHABLE) when the file is missing, unreadable or malformed.
    """
    problem = ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = None
    except (OSError, UnicodeDecodeError) as exc:
        data, problem = None, f" (cannot read it: {exc})"
    except json.JSONDecodeError:
        data, problem = None, " (not valid JSON)"
    control = data.get("control") if isinstance(data, dict) else None
    if isinstance(control, str) and control:
        return control
    if data is not None:
        problem = ' (no "control" endpoint in it)'
    message = f"no simulated kiosk found at {path}{problem}; {SIMULATOR_HINT}"
    raise CliError(message, ExitCode.UNREACHABLE)


def sim(args: argparse.Namespace) -> int:
    """`hwd sim COMMAND`: runs one :data:`SIM_COMMANDS` entry against the simulator."""
    command = SIM_COMMANDS[args.sim_command]
    peer = Peer("simulator", read_control_target(endpoints_path(args)), SIMULATOR_HINT)
    with open_channel(peer, args.timeout) as channel:
        response = command.call(simulator_pb2_grpc.SimulatorStub(channel), args, args.timeout)
    if args.json:
        print(command.render_json(response) if command.render_json else to_json(response))
    else:
        text = command.render(response)
        if text:
            print(text)
    return 0
