"""The Android transport and reader against a simulated phone speaking real ADB over TCP, in this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from hwd.drivers.android.read import read_report
from hwd.drivers.android.reader import TRUST_PROMPT, AndroidReader
from hwd.drivers.android.transport import open_session
from hwd.errors import PhoneError
from hwd.model.phones import Platform, PortEvent
from simulators.adb.phone import AdbPhone
from simulators.adb.trust import TrustStore
from simulators.android.profiles import load_profiles

TIMEOUT_S = 4.0
TRUST_S = 4.0


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("adbkey")


@asynccontextmanager
async def plugged(profile: str = "pixel-7", answer: str = "accept") -> AsyncIterator[AdbPhone]:
    phone = AdbPhone(load_profiles()[profile], "1-1.3", TrustStore(answer, 0.0))
    await phone.start()
    try:
        yield phone
    finally:
        await phone.stop()


def counter() -> tuple[list[int], Callable[[], None]]:
    calls: list[int] = []
    return calls, lambda: calls.append(1)


async def test_a_new_kiosk_key_is_allowed_once_then_the_phone_is_read(key_dir: Path) -> None:
    prompts, on_prompt = counter()
    async with plugged("galaxy-a52") as phone:
        session = await open_session(
            phone.endpoint, key_dir, on_prompt=on_prompt, trust_timeout_s=TRUST_S, timeout_s=TIMEOUT_S
        )
        try:
            report = await read_report(session, deadline_s=TIMEOUT_S)
        finally:
            await session.close()
        again = await open_session(phone.endpoint, key_dir, on_prompt=on_prompt, trust_timeout_s=TRUST_S, timeout_s=1)
        await again.close()
    assert prompts == [1]  # the phone remembered the key: no second prompt
    assert (report.model.value, report.serial.value) == ("SM-A525F", "RZ8R30LMNPQ")
    assert (report.imei.value, report.imei2.value) == ("359299101234560", "359299101234578")
    assert (key_dir / "adbkey").stat().st_mode & 0o777 == 0o600


async def test_a_refused_prompt_is_trust_refused(key_dir: Path) -> None:
    prompts, on_prompt = counter()
    async with plugged(answer="refuse") as phone:
        with pytest.raises(PhoneError) as caught:
            await open_session(
                phone.endpoint, key_dir, on_prompt=on_prompt, trust_timeout_s=TRUST_S, timeout_s=TIMEOUT_S
            )
    assert caught.value.code == "TRUST_REFUSED"
    assert prompts == [1]


async def test_an_ignored_prompt_is_trust_timeout(key_dir: Path) -> None:
    async with plugged(answer="ignore") as phone:
        with pytest.raises(PhoneError) as caught:
            await open_session(
                phone.endpoint, key_dir, on_prompt=lambda: None, trust_timeout_s=0.2, timeout_s=TIMEOUT_S
            )
    assert caught.value.code == "TRUST_TIMEOUT"


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("garbage", "PHONE_PROTOCOL_ERROR"),
        ("bad-checksum", "PHONE_PROTOCOL_ERROR"),
        ("oversized", "PHONE_PROTOCOL_ERROR"),
        ("drop", "PHONE_DISCONNECTED"),
        ("endless", "PHONE_OUTPUT_TOO_LARGE"),
        ("stall", "PHONE_STALLED"),
    ],
)
async def test_a_misbehaving_phone_fails_with_its_reason(key_dir: Path, fault: str, code: str) -> None:
    async with plugged() as phone:
        session = await open_session(
            phone.endpoint, key_dir, on_prompt=lambda: None, trust_timeout_s=TRUST_S, timeout_s=1
        )
        phone.fault(fault, {})
        try:
            with pytest.raises(PhoneError) as caught:
                await read_report(session, deadline_s=TIMEOUT_S)
        finally:
            await session.close()
    assert caught.value.code == code


async def test_nothing_listening_is_phone_disconnected(key_dir: Path) -> None:
    async with plugged() as phone:
        endpoint = phone.endpoint
    with pytest.raises(PhoneError) as caught:
        await open_session(endpoint, key_dir, on_prompt=lambda: None, trust_timeout_s=TRUST_S, timeout_s=TIMEOUT_S)
    assert caught.value.code == "PHONE_DISCONNECTED"


async def test_the_reader_reports_prompt_then_identifying_then_the_report(tmp_path: Path) -> None:
    steps: list[object] = []

    async def on_prompt(text: str, seconds: float) -> None:
        steps.append(("prompt", text, seconds))

    async def on_identifying() -> None:
        steps.append("identifying")

    reader = AndroidReader(tmp_path / "keys", trust_timeout_s=TRUST_S, timeout_s=TIMEOUT_S)
    async with plugged("galaxy-s9") as phone:
        event = PortEvent("1-1.3", True, Platform.ANDROID, phone.profile.serial, phone.endpoint)
        report = await reader.identify(event, on_prompt, on_identifying)
    assert steps == [("prompt", TRUST_PROMPT, TRUST_S), "identifying"]
    assert report.imei.value == "353325100887763"
    assert report.screen_lock_set.value is True


async def test_unplugging_while_the_prompt_shows_releases_the_connection(tmp_path: Path) -> None:
    shown = asyncio.Event()

    async def on_prompt(text: str, seconds: float) -> None:
        shown.set()

    async def on_identifying() -> None:
        raise AssertionError("never connected")

    reader = AndroidReader(tmp_path / "keys", trust_timeout_s=60, timeout_s=TIMEOUT_S)
    async with plugged(answer="ignore") as phone:
        event = PortEvent("1-1.3", True, Platform.ANDROID, phone.profile.serial, phone.endpoint)
        task = asyncio.create_task(reader.identify(event, on_prompt, on_identifying))
        await shown.wait()
        served = list(phone._connections)  # the phone's side of each connection ends when the kiosk closes it
        assert served
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(asyncio.gather(*served), TIMEOUT_S)
        assert phone.trust.prompts_open == 0


async def test_a_phone_with_usb_debugging_off_is_not_connected(tmp_path: Path) -> None:
    async def never(*_args: object) -> None:
        raise AssertionError("no prompt for a phone without ADB")

    reader = AndroidReader(tmp_path / "keys", trust_timeout_s=TRUST_S, timeout_s=TIMEOUT_S)
    event = PortEvent("1-1.3", True, Platform.ANDROID, "R5CR10ABCDE", "", debuggable=False)
    with pytest.raises(PhoneError) as caught:
        await reader.identify(event, never, never)
    assert caught.value.code == "USB_DEBUGGING_OFF"
    assert not (tmp_path / "keys").exists()
