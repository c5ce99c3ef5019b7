"""The example UI client in examples/ works against a real daemon (so it cannot rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hwd.rpc.pb.hwd.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.helpers import DaemonProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ui_client.py"


def test_the_example_ui_client_sees_new_events(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    daemon.start()
    try:
        with subprocess.Popen(
            [sys.executable, str(EXAMPLE), str(daemon.socket_dir), "--max-events", "2"],
            stdout=subprocess.PIPE, text=True,
        ) as client:  # fmt: skip
            assert client.stdout is not None
            assert client.stdout.readline().startswith("daemon DEVICE_STATE_ONLINE")
            with daemon.channel("tech") as tech:
                for i in range(2):
                    kiosk_pb2_grpc.KioskStub(tech).AddNote(kiosk_pb2.AddNoteRequest(request_id=f"e{i}", text="x"))
            out = client.stdout.read()
            assert client.wait(30) == 0
    finally:
        daemon.stop()
    assert [line.split()[-1] for line in out.splitlines()] == ["note_added", "note_added"]
