"""The daemon's gRPC contract as seen by @grpc/grpc-js, a pure JavaScript HTTP/2 gRPC client that
shares no code with the Python/C-core server.

The client (``grpcjs/client.mjs``) runs once against a real ``hwd serve`` process and reports what
it saw as one JSON object; the tests below judge that report. Its dependencies are pinned in
``grpcjs/package-lock.json`` and installed with ``npm ci`` in that directory.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.rpc.error_details_pb2 import ErrorInfo
from google.rpc.status_pb2 import Status

import hwd
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.conformance

CLIENT_DIR = Path(__file__).parent / "grpcjs"
PROTO_ROOT = Path(__file__).parents[2] / "protos"
KIOSK = "hwd.v1.Kiosk"
NOTE_TEXT = "from grpc-js"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (Node.js >= 20) is not installed; the grpc-js client needs it")
    if not (CLIENT_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.skip(f"grpc-js is not installed: run `npm ci` in {CLIENT_DIR}")
    return node


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs the grpc-js client once against a fresh daemon and returns its JSON report."""
    node = _node()
    daemon = DaemonProcess(tmp_path_factory.mktemp("grpcjs"))
    daemon.start()
    try:
        run = subprocess.run(
            [node, str(CLIENT_DIR / "client.mjs"), str(daemon.socket_dir), str(PROTO_ROOT)],
            check=False, timeout=60, capture_output=True, text=True, cwd=CLIENT_DIR,
        )  # fmt: skip
        code = daemon.stop()
    finally:
        daemon.kill()
    assert run.returncode == 0, f"grpc-js client failed:\n{run.stderr}\ndaemon log:\n{daemon.stderr()}"
    assert code == 0, f"daemon exited with {code}:\n{daemon.stderr()}"
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_health_is_serving_on_both_sockets(report: dict[str, Any]) -> None:
    assert report["health"] == {role: {"": "SERVING", KIOSK: "SERVING"} for role in ("ui", "tech")}


def test_health_watch_streams_the_status(report: dict[str, Any]) -> None:
    for role in ("ui", "tech"):
        watch = report["health_watch"][role]
        assert watch["ok"], f"Health.Watch on {role}.sock failed: {watch}"
        assert watch["response"]["status"] == "SERVING"


def test_status_reports_an_online_daemon_and_its_version(report: dict[str, Any]) -> None:
    status = report["status"]
    assert status["daemon_state"] == "DEVICE_STATE_ONLINE"
    assert status["version"] == hwd.__version__
    assert int(status["last_sequence"]) >= 1
    assert status["devices"] >= 0


def test_add_note_is_idempotent_by_request_id(report: dict[str, Any]) -> None:
    note = report["add_note"]
    assert int(note["sequence"]) > int(report["status"]["last_sequence"])
    assert note["repeated_sequence"] == note["sequence"]


def test_add_note_is_refused_on_ui_sock_with_error_info(report: dict[str, Any]) -> None:
    refused = report["add_note_on_ui"]
    assert refused["code"] == 7, refused  # PERMISSION_DENIED
    assert "ui.sock" in refused["details"]
    assert refused["has_status_details_bin"]
    status = Status.FromString(base64.b64decode(refused["status_details_bin_base64"]))
    assert status.code == 7
    assert status.message == refused["details"]
    info = ErrorInfo()
    assert status.details, status
    assert status.details[0].Unpack(info), status.details[0].type_url
    assert info.reason == "METHOD_NOT_ALLOWED"
    assert info.domain == "hwd.dev"


def test_watch_events_replays_the_journal_up_to_the_note(report: dict[str, Any]) -> None:
    watch = report["watch"]
    sequences = [int(s) for s in watch["sequences"]]
    assert sequences == list(range(1, len(sequences) + 1))
    assert sequences[-1] == int(report["add_note"]["sequence"])
    note = watch["note"]
    assert note["payload"] == "note_added"
    assert note["text"] == NOTE_TEXT
