"""The Kiosk service over its real sockets: idempotent notes, leases, slow subscribers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from hwd.rpc.pb.hwd.v1 import common_pb2, kiosk_pb2
from tests.helpers import error_info, running_daemon


async def test_a_repeated_request_id_writes_one_note_and_returns_the_first_outcome(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as d, d.channel("tech") as tech:
        kiosk = d.kiosk(tech)
        request = kiosk_pb2.AddNoteRequest(request_id="note-1", text="bin emptied", author="tech-7")
        first, again = await kiosk.AddNote(request), await kiosk.AddNote(request)
        assert first.sequence == again.sequence
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await kiosk.AddNote(kiosk_pb2.AddNoteRequest(request_id="note-1", text="other text", author="tech-7"))
        assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(reused.value).reason == "REQUEST_ID_REUSED"
        last = (await kiosk.GetStatus(kiosk_pb2.GetStatusRequest())).last_sequence
        events = [e async for e in _take(kiosk.WatchEvents(kiosk_pb2.WatchEventsRequest()), last)]
        assert [e.note_added.text for e in events if e.HasField("note_added")] == ["bin emptied"]


async def test_bad_notes_are_invalid_arguments(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as d, d.channel("tech") as tech:
        for request in (
            kiosk_pb2.AddNoteRequest(request_id="", text="x"),
            kiosk_pb2.AddNoteRequest(request_id="has space", text="x"),
            kiosk_pb2.AddNoteRequest(request_id="ok", text="   "),
            kiosk_pb2.AddNoteRequest(request_id="ok", text="x" * 4097),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await d.kiosk(tech).AddNote(request)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _take(stream: grpc.aio.UnaryStreamCall, last: int):  # type: ignore[no-untyped-def]
    async for event in stream:
        yield event
        if event.sequence >= last:
            stream.cancel()
            return


async def test_leases_are_exclusive_visible_and_expire(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as d, d.channel("ui") as ui, d.channel("tech") as tech:
        lease = (
            await d.kiosk(ui).AcquireLease(kiosk_pb2.AcquireLeaseRequest(device="journal", holder="kiosk-ui"))
        ).lease
        assert lease.lease_id
        assert lease.holder == "kiosk-ui"
        with pytest.raises(grpc.aio.AioRpcError) as held:
            await d.kiosk(tech).AcquireLease(kiosk_pb2.AcquireLeaseRequest(device="journal", holder="tech"))
        assert held.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(held.value).reason == "LEASE_HELD"
        assert "kiosk-ui" in held.value.details()
        shown = (await d.kiosk(tech).GetStatus(kiosk_pb2.GetStatusRequest())).leases
        assert [(s.device, s.holder, s.lease_id) for s in shown] == [("journal", "kiosk-ui", "")]

        # Renew with a short life, then let it run out: the EXPIRED event arrives without any call.
        after = (await d.kiosk(ui).GetStatus(kiosk_pb2.GetStatusRequest())).last_sequence
        short = kiosk_pb2.RenewLeaseRequest(lease_id=lease.lease_id, ttl=Duration(nanos=200_000_000))
        await d.kiosk(ui).RenewLease(short)
        stream = d.kiosk(tech).WatchEvents(kiosk_pb2.WatchEventsRequest(after_sequence=after))
        changes = []
        async with asyncio.timeout(10):
            async for event in stream:
                changes.append(event.lease_changed.change)
                if event.lease_changed.change == common_pb2.LEASE_CHANGE_EXPIRED:
                    stream.cancel()
                    break
        assert changes == [common_pb2.LEASE_CHANGE_RENEWED, common_pb2.LEASE_CHANGE_EXPIRED]
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await d.kiosk(ui).ReleaseLease(kiosk_pb2.ReleaseLeaseRequest(lease_id=lease.lease_id))
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        taken = await d.kiosk(tech).AcquireLease(kiosk_pb2.AcquireLeaseRequest(device="journal", holder="tech"))
        assert taken.lease.holder == "tech"
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await d.kiosk(ui).AcquireLease(kiosk_pb2.AcquireLeaseRequest(device="no-such", holder="ui"))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_subscriber_that_stops_reading_is_cut_off_and_resumes_without_loss(tmp_path: Path) -> None:
    # A small queue and a client window of 64 KiB without BDP growth, so that a reader that
    # stops reading backs the daemon up quickly.
    client_options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 65536)]
    async with running_daemon(tmp_path, events={"subscriber_queue": 16}) as d, d.channel("tech") as tech:
        start = (await d.kiosk(tech).GetStatus(kiosk_pb2.GetStatusRequest())).last_sequence
        sock = f"unix:{d.socket_dir / 'ui.sock'}"
        async with grpc.aio.insecure_channel(sock, options=client_options) as ui:
            stream = d.kiosk(ui).WatchEvents(kiosk_pb2.WatchEventsRequest(after_sequence=start))
            await d.kiosk(tech).AddNote(kiosk_pb2.AddNoteRequest(request_id="first", text="first"))
            received = [(await stream.read()).sequence]
            async with asyncio.timeout(10):
                while d.daemon.bus.subscriber_count < 1:  # noqa: ASYNC110 - until its replay has gone live
                    await asyncio.sleep(0)
            for i in range(400):  # 400 x 4 KiB: far beyond the window plus the queue
                await d.kiosk(tech).AddNote(kiosk_pb2.AddNoteRequest(request_id=f"n{i}", text=f"{i:04d}" * 1024))

            async def drain() -> None:
                while (event := await stream.read()) is not grpc.aio.EOF:
                    received.append(event.sequence)

            with pytest.raises(grpc.aio.AioRpcError) as cut:
                await asyncio.wait_for(drain(), 10)
        assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info(cut.value)
        assert info.reason == "SUBSCRIBER_TOO_SLOW"
        assert int(info.metadata["last_sequence"]) == received[-1]
        assert received == list(range(start + 1, received[-1] + 1))
        newest = start + 401
        assert received[-1] < newest, "it was cut off before the end"
        async with d.channel("ui") as ui:
            resumed = [e.sequence async for e in _take(d.kiosk(ui).WatchEvents(
                kiosk_pb2.WatchEventsRequest(after_sequence=received[-1])), newest)]  # fmt: skip
        assert received + resumed == list(range(start + 1, newest + 1))


async def test_a_bug_becomes_internal_with_a_log_line_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_daemon(tmp_path) as d, d.channel("ui") as ui:

        def broken() -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(d.daemon.kiosk, "status", broken)
        with pytest.raises(grpc.aio.AioRpcError) as bug:
            await d.kiosk(ui).GetStatus(kiosk_pb2.GetStatusRequest())
        assert bug.value.code() == grpc.StatusCode.INTERNAL
        assert error_info(bug.value).reason == "INTERNAL"
        assert "boom" not in bug.value.details(), "internals stay in the log"
        assert any("bug in /hwd.v1.Kiosk/GetStatus" in r.message and r.exc_info for r in caplog.records)
        monkeypatch.undo()
        assert (await d.kiosk(ui).GetStatus(kiosk_pb2.GetStatusRequest())).daemon.device == "daemon"


async def test_oversized_messages_and_too_many_calls_are_refused(tmp_path: Path) -> None:
    limits = {"max_message_bytes": 65536, "max_concurrent_rpcs": 8}
    async with running_daemon(tmp_path, grpc=limits) as d, d.channel("tech") as tech, d.channel("ui") as ui:
        with pytest.raises(grpc.aio.AioRpcError) as big:
            await d.kiosk(tech).AddNote(kiosk_pb2.AddNoteRequest(request_id="big", text="x" * 70_000))
        assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        streams = [d.kiosk(ui).WatchEvents(kiosk_pb2.WatchEventsRequest()) for _ in range(8)]
        for stream in streams:
            await stream.read()  # each stream is open and being served
        with pytest.raises(grpc.aio.AioRpcError) as busy:
            await d.kiosk(ui).GetStatus(kiosk_pb2.GetStatusRequest())
        assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await d.kiosk(tech).GetStatus(kiosk_pb2.GetStatusRequest())).daemon.device == "daemon"
        for stream in streams:
            stream.cancel()
