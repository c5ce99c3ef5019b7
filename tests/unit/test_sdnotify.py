"""sd_notify: fields reach the notify socket as newline-separated bytes; failures are logged, not raised."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwd.sdnotify import notify


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(5)  # a deadline for recv, not a timing assertion
    yield sock
    sock.close()


def test_notify_sends_the_fields_to_the_socket(
    tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    listener.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert notify("READY=1", "STATUS=x") is True
    assert listener.recv(4096) == b"READY=1\nSTATUS=x"


def test_notify_reaches_an_abstract_socket(listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"hwd-test-{os.getpid()}-{secrets.token_hex(8)}"
    listener.bind("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    assert notify("STOPPING=1") is True
    assert listener.recv(4096) == b"STOPPING=1"


@pytest.mark.parametrize("value", [None, ""])
def test_notify_without_systemd_does_nothing(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert notify("READY=1") is False


def test_notify_to_a_socket_nobody_listens_on_logs_and_returns_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    with caplog.at_level(logging.WARNING, logger="hwd.sdnotify"):
        assert notify("READY=1") is False
    [record] = [r for r in caplog.records if r.name == "hwd.sdnotify"]
    assert record.levelno == logging.WARNING
    assert str(path) in record.getMessage()
