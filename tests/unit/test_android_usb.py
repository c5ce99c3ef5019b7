"""The USB ADB session's worker thread: no device handle outlives a failed or abandoned connect."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from hwd.drivers.android import usb
from hwd.drivers.android.usb import UsbAdbSession
from hwd.errors import PhoneError


class FakeDevice:
    """adb-shell's blocking device: ``connect`` waits for ``release`` (if given), then succeeds or raises."""

    def __init__(self, release: threading.Event | None = None, error: Exception | None = None) -> None:
        self.release = release
        self.error = error
        self.closed = threading.Event()

    def connect(self, **_kwargs: Any) -> None:
        if self.release is not None:
            self.release.wait(5.0)
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed.set()


def use(monkeypatch: pytest.MonkeyPatch, device: FakeDevice) -> None:
    monkeypatch.setattr(usb, "_find", lambda _where, _timeout_s: device)


async def test_a_refused_handshake_closes_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeDevice(error=ConnectionResetError("refused"))
    use(monkeypatch, device)
    with pytest.raises(PhoneError) as caught:
        await UsbAdbSession.open("1:7", object(), lambda: None, 1.0, 1.0, 1024)
    assert caught.value.code == "PHONE_DISCONNECTED"
    assert device.closed.wait(5.0), "the half-open device was closed in its thread"


async def test_a_connect_past_its_deadline_closes_the_device_once_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    device = FakeDevice(release=release)
    use(monkeypatch, device)
    with pytest.raises(PhoneError) as caught:
        await UsbAdbSession.open("1:7", object(), lambda: None, 0.05, 0.05, 1024)
    assert caught.value.code == "PHONE_TOO_SLOW"
    assert not device.closed.is_set()
    release.set()  # the stuck connect finally succeeds: nobody holds the session, so it is closed
    assert device.closed.wait(5.0), "the late device was closed"


async def test_a_connected_session_closes_its_device(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeDevice()
    use(monkeypatch, device)
    session = await UsbAdbSession.open("1:7", object(), lambda: None, 1.0, 1.0, 1024)
    assert not device.closed.is_set()
    await session.close()
    assert device.closed.wait(5.0)
