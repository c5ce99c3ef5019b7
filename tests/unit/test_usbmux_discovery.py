"""The usbmuxd Listen watcher against a scripted usbmuxd on a local socket, its total parsers under
arbitrary bytes, and the merge of several port sources (udev's iPhones left to usbmuxd)."""

from __future__ import annotations

import asyncio
import plistlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwd.discovery.merge import MergedSource, without
from hwd.discovery.usbmux import UsbmuxWatcher, parse_address
from hwd.discovery.usbmux_wire import (
    HEADER,
    MAX_FRAME,
    Attached,
    Detached,
    Garbage,
    body_length,
    decode,
    device_change,
    encode,
)
from hwd.errors import DeviceUnavailable
from hwd.model.phones import Platform, PortEvent

UDID = "00008110-001A2D3E0C12801E"
OTHER = "00008030-000A1B2C3D4E5F60"
PORTS = {UDID: "1-4.4", OTHER: "1-4.1"}


def attached(device_id: int, udid: str, connection: str = "USB") -> dict[str, Any]:
    props = {"ConnectionType": connection, "DeviceID": device_id, "LocationID": 0x10007, "ProductID": 0x12A8,
             "SerialNumber": udid}  # fmt: skip
    return {"MessageType": "Attached", "DeviceID": device_id, "Properties": props}


def detached(device_id: int) -> dict[str, Any]:
    return {"MessageType": "Detached", "DeviceID": device_id}


async def locate(udid: str, location: int) -> str | None:
    return PORTS.get(udid)


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(script: Script) -> tuple[asyncio.Server, str]:
    """A usbmuxd stand-in on 127.0.0.1 playing ``script`` to each client; returns it and its address."""
    server = await asyncio.start_server(script, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    return server, f"{host}:{port}"


def listen_then(*messages: dict[str, Any] | bytes, result: int = 0, hold: bool = True) -> Script:
    """Answers Listen with ``result``, sends ``messages`` (raw bytes as they are), then holds or closes."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(HEADER.size)
        length, _version, _kind, tag = HEADER.unpack(header)
        request = plistlib.loads(await reader.readexactly(length - HEADER.size))
        assert request["MessageType"] == "Listen"
        writer.write(encode({"MessageType": "Result", "Number": result}, tag))
        for message in messages:
            writer.write(message if isinstance(message, bytes) else encode(message, 0))
        await writer.drain()
        if hold:
            await reader.read()  # until the watcher closes its end
        writer.close()

    return script


async def collect(stream: AsyncIterator[PortEvent], count: int) -> list[PortEvent]:
    out = []
    async with asyncio.timeout(10):  # a guard against a hang, not a timing check
        async for event in stream:
            out.append(event)
            if len(out) == count:
                break
    return out


IPHONE = PortEvent("1-4.4", True, Platform.IOS, UDID, f"usbmux:{UDID}", description="Apple iPhone (05ac:12a8)")


async def test_attached_and_detached_phones_become_port_events_on_their_ports() -> None:
    server, address = await serve(listen_then(attached(3, UDID), attached(4, OTHER), detached(3), detached(99)))
    async with server:
        stream = UsbmuxWatcher(address, locate).events()
        events = await collect(stream, 3)
        await stream.aclose()
    assert events[0] == IPHONE
    assert (events[1].port, events[1].serial, events[1].endpoint) == ("1-4.1", OTHER, f"usbmux:{OTHER}")
    assert events[2] == PortEvent("1-4.4", attached=False)  # the unknown DeviceID 99 says nothing


async def test_a_network_phone_and_one_on_no_known_port_are_not_announced() -> None:
    unknown = "ffffffff-0000000000000000"
    server, address = await serve(listen_then(attached(1, UDID, "Network"), attached(2, unknown), detached(2),
                                              attached(3, UDID)))  # fmt: skip
    async with server:
        stream = UsbmuxWatcher(address, locate).events()
        assert await collect(stream, 1) == [IPHONE]
        await stream.aclose()


@pytest.mark.parametrize(
    ("script", "says"),
    [
        (listen_then(result=3), "refused Listen"),
        (listen_then(b"\x00" * 16), "not a plist frame"),
        (listen_then(HEADER.pack(HEADER.size + MAX_FRAME, 1, 8, 0)), "bytes"),
        (listen_then(encode({"MessageType": "Attached"}, 0)), "without a DeviceID"),
        (listen_then(HEADER.pack(HEADER.size + 7, 1, 8, 0) + b"<plist>"), "not an XML plist"),
        (listen_then(hold=False), "closed the stream"),
    ],
)
async def test_garbage_or_a_closed_stream_is_device_unavailable(script: Script, says: str) -> None:
    server, address = await serve(script)
    async with server:
        stream = UsbmuxWatcher(address, locate).events()
        with pytest.raises(DeviceUnavailable, match=says):
            await collect(stream, 1)
        await stream.aclose()


async def test_a_body_that_never_comes_is_a_timeout_not_a_hang() -> None:
    server, address = await serve(listen_then(HEADER.pack(HEADER.size + 100, 1, 8, 0)))
    async with server:
        stream = UsbmuxWatcher(address, locate, timeout_s=0.2).events()
        with pytest.raises(DeviceUnavailable, match="did not answer"):
            await collect(stream, 1)
        await stream.aclose()


async def test_no_usbmuxd_is_device_unavailable(tmp_path: Path) -> None:
    stream = UsbmuxWatcher(str(tmp_path / "usbmuxd"), locate).events()
    with pytest.raises(DeviceUnavailable, match="cannot reach usbmuxd"):
        await collect(stream, 1)


@pytest.mark.parametrize(
    ("text", "where"),
    [("/var/run/usbmuxd", Path("/var/run/usbmuxd")), ("UNIX:/run/m", Path("/run/m")),
     ("127.0.0.1:27015", ("127.0.0.1", 27015)), ("[::1]:5", ("::1", 5))],
)  # fmt: skip
def test_addresses_as_libimobiledevice_and_pymobiledevice3_write_them(text: str, where: object) -> None:
    assert parse_address(text) == where


@pytest.mark.parametrize("text", ["", "usbmuxd", "host:", "host:99999", "host:port"])
def test_a_bad_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a usbmuxd address"):
        parse_address(text)


# --- total parsers ----------------------------------------------------------------------------------


@given(st.binary(max_size=64))
def test_any_header_gives_a_length_within_the_cap_or_garbage(data: bytes) -> None:
    length = body_length(data)
    assert isinstance(length, Garbage) or 0 <= length <= MAX_FRAME - HEADER.size


@given(st.binary(max_size=2048))
def test_any_body_gives_a_dictionary_or_garbage(data: bytes) -> None:
    message = decode(data)
    assert isinstance(message, Garbage | dict)
    if isinstance(message, dict):
        assert isinstance(device_change(message), Attached | Detached | Garbage | type(None))


plist_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=40) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["MessageType", "DeviceID", "Properties", "Number"]), plist_values))
def test_any_message_gives_a_change_or_garbage(message: dict[str, Any]) -> None:
    change = device_change(message)
    assert isinstance(change, Attached | Detached | Garbage | type(None))
    if isinstance(change, Attached):
        assert change.udid
        assert change.udid.isprintable()


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200))
def test_any_xml_text_gives_a_dictionary_or_garbage(text: str) -> None:
    body = f'<?xml version="1.0"?><plist version="1.0">{text}</plist>'.encode()
    assert isinstance(decode(body), Garbage | dict)


def test_entity_expansion_is_garbage() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa">]><plist><string>&a;&a;</string></plist>'
    assert isinstance(decode(bomb), Garbage)


# --- merging sources --------------------------------------------------------------------------------

PIXEL = PortEvent("1-4.2", True, Platform.ANDROID, "PIXEL7", "usb:1:5")
UDEV_IPHONE = PortEvent("1-4.4", True, Platform.IOS, UDID, f"usbmux:{UDID}")


async def listed(*events: PortEvent) -> AsyncGenerator[PortEvent, None]:
    for event in events:
        yield event


async def test_without_drops_a_platform_and_the_removals_of_its_ports() -> None:
    stream = without(listed(PIXEL, UDEV_IPHONE, PortEvent("1-4.4", False), PortEvent("1-4.2", False)), Platform.IOS)
    assert [event async for event in stream] == [PIXEL, PortEvent("1-4.2", False)]


async def test_a_failing_source_loses_its_ports_and_restarts_while_the_other_goes_on() -> None:
    opened = 0
    gate = asyncio.Event()

    async def flaky() -> AsyncGenerator[PortEvent, None]:
        nonlocal opened
        opened += 1
        yield IPHONE
        raise DeviceUnavailable("usbmuxd closed the stream")

    async def steady() -> AsyncGenerator[PortEvent, None]:
        yield PIXEL
        await gate.wait()
        yield PortEvent("1-4.2", False)
        await asyncio.Event().wait()

    stream = MergedSource((flaky, steady), ("usbmuxd", "udev"), backoff_s=0.01).events()
    seen = await collect(stream, 4)
    gate.set()
    seen += await collect(stream, 3)
    await stream.aclose()
    assert seen.count(IPHONE) >= 2
    assert opened >= 2
    assert PortEvent("1-4.4", False) in seen  # its port left when it failed
    assert seen.count(PIXEL) == 1
    assert PortEvent("1-4.2", False) in seen
