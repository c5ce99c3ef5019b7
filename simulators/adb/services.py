"""The services a simulated phone opens on OPEN, and the bytes each one sends back.

``shell:<cmd>`` and ``exec:<cmd>`` are shell protocol v1: the output, then CLSE, no exit
code (``shell:`` mixes stderr into the output like a pty does; ``exec:`` sends stdout only).
``shell,v2,<args>:<cmd>`` (args such as ``TERM=xterm``, ``raw``, ``pty``) is shell protocol
v2: frames of ``[id u8][length u32 LE][data]``, id 1 stdout, 2 stderr, 3 the exit code in
one byte. Interactive shells (an empty command) and every other service are refused.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from simulators.adb.profile import ShellOutput

STDOUT, STDERR, EXIT = 1, 2, 3
_FRAME = struct.Struct("<BI")
#: What an endless command prints, again and again.
ENDLESS_LINE = b"logcat: still running\n"


@dataclass(frozen=True, slots=True)
class ShellRequest:
    """An OPEN that asks for a shell command."""

    command: str
    v2: bool
    stderr: bool = True  # exec: sends stdout only


def parse_service(destination: bytes, features: Collection[str]) -> ShellRequest | str:
    """Understand an OPEN payload; total.

    :param features: the phone's features (``shell,v2`` needs ``shell_v2``).
    :returns: the shell request, or why the service is refused.
    """
    try:
        text = destination.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        return "service name is not UTF-8"
    head, sep, command = text.partition(":")
    if not sep:
        return f"unknown service {text[:64]!r}"
    options = head.split(",")
    if options[0] not in ("shell", "exec") or (options[0] == "exec" and len(options) > 1):
        return f"unknown service {head[:64]!r}"
    if not command:
        return "interactive shells are not simulated"
    v2 = "v2" in options[1:]
    if v2 and "shell_v2" not in features:
        return "shell protocol v2 is not supported by this phone"
    return ShellRequest(command, v2, stderr=options[0] == "shell")


def frame(stream_id: int, data: bytes) -> bytes:
    """One shell v2 frame."""
    return _FRAME.pack(stream_id, len(data)) + data


def _split(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def output_chunks(request: ShellRequest, result: ShellOutput, max_payload: int) -> Iterator[bytes]:
    """The WRTE payloads that carry ``result``, each at most ``max_payload`` bytes.

    The exit-code frame of v2 always travels in a WRTE of its own, so a connection cut before
    it leaves the command without a status, as on a real phone.
    """
    if not request.v2:
        data = result.stdout + (result.stderr if request.stderr else b"")
        yield from _split(data, max_payload)
        return
    room = max_payload - _FRAME.size
    for stream_id, data in ((STDOUT, result.stdout), (STDERR, result.stderr)):
        for piece in _split(data, room):
            yield frame(stream_id, piece)
    yield frame(EXIT, bytes([result.exit_code & 0xFF]))


def endless_chunks(request: ShellRequest, max_payload: int) -> Iterator[bytes]:
    """Output that never ends (the ``endless`` fault), in WRTE payloads of at most ``max_payload``."""
    lines = ENDLESS_LINE * max(1, min(max_payload, 4096) // len(ENDLESS_LINE) - 1)
    payload = frame(STDOUT, lines) if request.v2 else lines
    return itertools.repeat(payload)
