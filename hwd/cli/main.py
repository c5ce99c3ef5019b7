"""The `hwd` command line (every command but `hwd serve`, which hwd.__main__ hands to the daemon)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

import grpc

from hwd import __version__
from hwd.cli.camera import add_camera_parsers
from hwd.cli.client import CliError, report_rpc_error
from hwd.cli.config_cmd import config_check
from hwd.cli.events import events
from hwd.cli.exitcodes import ExitCode
from hwd.cli.kiosk import PROBE_TARGETS, note, probe
from hwd.cli.peripherals import add_peripheral_parsers
from hwd.cli.printer import add_printer_parsers
from hwd.cli.sim import add_sim_parsers, sim

Handler = Callable[[argparse.Namespace], int]
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
DEFAULT_TIMEOUT_S = 5.0

EXIT_CODES_HELP = """exit codes:
  0 ok                       5 bad request (INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE)
  1 unexpected error         6 not now (FAILED_PRECONDITION, ABORTED)
  2 usage error              7 RESOURCE_EXHAUSTED
  3 daemon/sim unreachable   8 DEADLINE_EXCEEDED
  4 permission denied        9 invalid configuration"""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text}")
    return value


def _sequence(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a sequence number (0 or more): {text}")
    return value


def _add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    # Accepted before and after the command; after it, SUPPRESS keeps the value given before.
    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--socket-dir",
        metavar="DIR",
        default=default(None),
        help="the daemon's socket directory (default: daemon.socket_dir of --config, $HWD_SOCKET_DIR, "
        "/run/hwd as root, else $XDG_RUNTIME_DIR/hwd)",
    )
    parser.add_argument("--config", metavar="FILE", default=default(None), help="read the socket directory from FILE")
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=default(DEFAULT_TIMEOUT_S),
        help=f"deadline of each call and of connecting (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print responses as JSON (proto field names)"
    )


def _command(
    sub: SubParsers,
    name: str,
    handler: Handler,
    help_text: str,
    common: list[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text, parents=common)
    parser.set_defaults(handler=handler)
    return parser


def _serve_not_first(args: argparse.Namespace) -> int:
    del args
    print("hwd: `serve` takes its own options and must come first: hwd serve [--config FILE] ...", file=sys.stderr)
    return ExitCode.USAGE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `hwd` command."""
    parser = argparse.ArgumentParser(
        prog="hwd",
        description="Technician tool of the hwd kiosk hardware daemon.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hwd {__version__}")
    _add_global_options(parser, top=True)
    common = [argparse.ArgumentParser(add_help=False)]
    _add_global_options(common[0], top=False)
    parser.set_defaults(handler=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _command(sub, "serve", _serve_not_first, "run the daemon (see `hwd serve --help`)", [])
    _add_daemon_commands(sub, common)
    add_peripheral_parsers(sub, common)
    add_printer_parsers(sub, common)
    add_camera_parsers(sub, common)
    config = sub.add_parser("config", help="work with configuration files", parents=common)
    config_sub = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    _command(config_sub, "check", config_check, "validate a configuration file", common).add_argument("file")
    sim_parser = sub.add_parser("sim", help="control the simulated kiosk", parents=common)
    sim_parser.set_defaults(handler=sim)
    add_sim_parsers(sim_parser, common)
    return parser


def _add_daemon_commands(sub: SubParsers, common: list[argparse.ArgumentParser]) -> None:
    p = _command(sub, "probe", probe, "show the status of the daemon and of every device", common)
    p.add_argument("target", nargs="?", choices=PROBE_TARGETS, metavar="TARGET", help=", ".join(PROBE_TARGETS))

    p = _command(sub, "events", events, "print journaled events (up to the newest, or --follow)", common)
    p.add_argument("--after", type=_sequence, default=0, metavar="N", help="start after sequence N (default: 0, all)")
    p.add_argument("--follow", action="store_true", help="keep printing new events until Ctrl-C")

    p = _command(sub, "note", note, "write a technician's note to the journal", common)
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--author", metavar="NAME", help="who writes it (default: $SUDO_USER, else $USER)")
    p.add_argument("--request-id", metavar="ID", help="id making a retry safe (default: a new uuid)")


def run(argv: Sequence[str] | None = None) -> int:
    """Runs one `hwd` command.

    :param argv: the arguments after the program name (default: sys.argv[1:]).
    :returns: the exit code (see :class:`hwd.cli.exitcodes.ExitCode`).
    """
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown and args.command != "serve":  # the daemon parses the options of serve
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # --help, --version, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    if args.handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    return _call(args.handler, args)


def _call(handler: Handler, args: argparse.Namespace) -> int:
    try:
        return int(handler(args))
    except CliError as exc:
        print(f"hwd: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except grpc.RpcError as exc:
        return report_rpc_error(exc)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # e.g. `hwd events | head`: the reader is gone, which is not a failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
