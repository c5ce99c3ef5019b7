"""A minimal kiosk UI client: status, then every event exactly once, resuming after any break.

Usage: python examples/ui_client.py [SOCKET_DIR] [--max-events N]

It shows the pattern a UI should follow: GetStatus, remember last_sequence, WatchEvents from it,
and on any end of the stream (daemon restart, too slow) reconnect from the last sequence applied.
"""

from __future__ import annotations

import argparse
import os
import time

import grpc
from grpc_status import rpc_status

from hwd.rpc.pb.hwd.v1 import common_pb2, kiosk_pb2, kiosk_pb2_grpc

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}


def watch(socket_dir: str, max_events: int | None) -> int:
    """Prints the kiosk's status, then events; returns the last sequence applied."""
    target = f"unix:{os.path.join(socket_dir, 'ui.sock')}"
    with grpc.insecure_channel(target) as channel:
        kiosk = kiosk_pb2_grpc.KioskStub(channel)
        status = kiosk.GetStatus(kiosk_pb2.GetStatusRequest(), timeout=5)
        state = common_pb2.DeviceState.Name(status.daemon.state)
        print(f"daemon {state}; {len(status.devices)} devices", flush=True)
        last, seen = status.last_sequence, 0
        while max_events is None or seen < max_events:
            try:
                for event in kiosk.WatchEvents(kiosk_pb2.WatchEventsRequest(after_sequence=last)):
                    print(f"{event.sequence} {event.source} {event.WhichOneof('payload')}", flush=True)
                    last, seen = event.sequence, seen + 1  # apply, then remember
                    if max_events is not None and seen >= max_events:
                        break
            except grpc.RpcError as err:
                if err.code() not in RETRYABLE:
                    raise
                status_detail = rpc_status.from_call(err)
                why = status_detail.message if status_detail else err.details()
                print(f"stream ended ({err.code().name}): {why}; resuming", flush=True)
                time.sleep(1)  # back off before reconnecting to a restarting daemon
        return last


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("socket_dir", nargs="?", default=os.environ.get("HWD_SOCKET_DIR", "/run/hwd"))
    parser.add_argument("--max-events", type=int, default=None)
    args = parser.parse_args()
    watch(args.socket_dir, args.max_events)
