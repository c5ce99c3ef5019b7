"""Benchmark 8: a phone from plug to READY (simulated ADB phones), against a technician's adb script.

hwd: the simulated kiosk plugs a phone, the daemon discovers it, answers the "Allow USB debugging?"
handshake, reads the whole report and marks the port READY; timed from the PlugPhone call to
the READY update on ``Phones.WatchPorts`` (tech.sock). Then the same phone, still plugged, is read
by a shell script that calls the real ``adb`` client once per field, the way a technician's script
does: ``adb connect``, ``getprop`` after ``getprop``, ``dumpsys battery``, ``df``, ``service call
iphonesubinfo`` and the dialer's IMEI screen. Finally 32 phones are plugged at once and timed
until every port is READY.
"""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import grpc

from bench.context import QUICK, Context
from bench.daemon import BenchError, HwdDaemon, clean_env, cpu_seconds
from bench.report import Goal, Section
from bench.stats import Summary
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import phones_pb2, phones_pb2_grpc

NAME = "phones"
TITLE = "8. Phones: plug to READY (simulated ADB phones, tech.sock) against an adb CLI script"
PROFILE = "pixel-7"
# Profiles whose report ends READY (no account lock), plugged in turn for the crowd.
CROWD = ("pixel-7", "galaxy-s21", "pixel-4a", "galaxy-a52", "redmi-note-10", "moto-g", "galaxy-s9", "pixel-4a-rooted")
PORTS = tuple(f"1-1.{n}" for n in range(1, 33))  # the simulated kiosk's ports
PLUGS, QUICK_PLUGS = 30, 8
WAIT_S = 60.0  # for a state; a phone that takes longer broke the benchmark
CALL_TIMEOUT_S = 30.0
State: TypeAlias = phones_pb2.PortState.ValueType
DONE: set[State] = {phones_pb2.PORT_STATE_READY}
FAILED: set[State] = {phones_pb2.PORT_STATE_DENIED, phones_pb2.PORT_STATE_UNSUPPORTED, phones_pb2.PORT_STATE_ERROR}
FAILED.add(phones_pb2.PORT_STATE_LOCKED)  # none of the profiles above is locked: LOCKED is a wrong report
ABSENT: set[State] = {phones_pb2.PORT_STATE_ABSENT}
# What a technician's script does: one adb command per field, the IMEI from the dialer when the
# shell is refused it (Android 10+). Output: NAME=VALUE lines, then the raw dumps.
ADB_SCRIPT = r"""#!/bin/bash
set -eu
T="$1"
adb connect "$T" >/dev/null
adb -s "$T" wait-for-device
for p in ro.product.manufacturer ro.product.brand ro.product.model ro.product.device ro.serialno \
         ro.build.version.release ro.build.version.sdk ro.build.id ro.build.version.security_patch \
         ro.build.fingerprint ro.build.tags ro.boot.verifiedbootstate ro.boot.flash.locked \
         gsm.sim.state gsm.operator.alpha; do
  echo "$p=$(adb -s "$T" shell getprop "$p")"
done
adb -s "$T" shell dumpsys battery
adb -s "$T" shell cat /sys/class/power_supply/battery/cycle_count || true
adb -s "$T" shell df -k /data
adb -s "$T" shell dumpsys account
adb -s "$T" shell dumpsys lock_settings
adb -s "$T" shell which su || true
adb -s "$T" shell service call iphonesubinfo 1 s16 com.android.shell
adb -s "$T" shell service call iphonesubinfo 4 i32 2 s16 com.android.shell
adb -s "$T" shell "am start -a android.intent.action.DIAL -d 'tel:*%2306%23'"
adb -s "$T" shell uiautomator dump /dev/tty
adb -s "$T" shell input keyevent KEYCODE_HOME
adb disconnect "$T" >/dev/null
"""


class PortWatch:
    """One ``Phones.WatchPorts`` stream read on a thread; every update is stamped when it arrives."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._updates: queue.Queue[tuple[int, phones_pb2.Port | Exception]] = queue.Queue()
        self.latest: dict[str, phones_pb2.Port] = {}
        self._call = phones_pb2_grpc.PhonesStub(channel).WatchPorts(phones_pb2.WatchPortsRequest())
        self._thread = threading.Thread(target=self._pump, name="watch-ports", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for port in self._call:
                self._updates.put((time.perf_counter_ns(), port))
        except grpc.RpcError as exc:
            self._updates.put((time.perf_counter_ns(), exc))

    def state(self, port: str) -> State:
        """The port's last known state (ABSENT for a port never seen)."""
        known = self.latest.get(port)
        return known.state if known is not None else phones_pb2.PORT_STATE_ABSENT

    def until(self, ports: Iterable[str], states: set[State]) -> dict[str, int]:
        """Waits until every port of ``ports`` is in one of ``states``.

        :returns: for each port, when the update that put it there arrived (perf_counter ns; 0 when
            it was there already).
        :raises BenchError: on a failed state (DENIED, ERROR ...), a broken stream, or after WAIT_S.
        """
        waiting = {p for p in ports if self.state(p) not in states}
        reached = {p: 0 for p in ports}
        deadline = time.perf_counter() + WAIT_S
        while waiting:
            try:
                stamp, item = self._updates.get(timeout=max(deadline - time.perf_counter(), 0.001))
            except queue.Empty:
                raise BenchError(f"ports {sorted(waiting)} not {_names(states)} within {WAIT_S} s") from None
            if isinstance(item, Exception):
                raise BenchError(f"WatchPorts broke: {item}")
            self.latest[item.port] = item
            if item.port in waiting and item.state in states:
                waiting.discard(item.port)
                reached[item.port] = stamp
            elif item.port in waiting and item.state in FAILED - states:
                state = phones_pb2.PortState.Name(item.state)
                raise BenchError(f"port {item.port} ended {state}: {item.reason} {item.detail}")
        return reached

    def close(self) -> None:
        self._call.cancel()  # type: ignore[no-untyped-call]
        self._thread.join(5.0)


def _names(states: set[State]) -> str:
    return "/".join(sorted(phones_pb2.PortState.Name(s).removeprefix("PORT_STATE_") for s in states))


class SimPhones:
    """The daemon's simulated kiosk: plugs and unplugs phones through its control service."""

    def __init__(self, socket_dir: Path) -> None:
        doc = json.loads((socket_dir / "sim" / "endpoints.json").read_text())
        self.pid = int(doc["pid"])
        self._channel = grpc.insecure_channel(doc["control"])
        self._stub = simulator_pb2_grpc.SimulatorStub(self._channel)

    def plug(self, profile: str, port: str) -> simulator_pb2.SimPhone:
        """Plugs a phone that accepts the kiosk at once."""
        request = simulator_pb2.PlugPhoneRequest(profile=profile, port=port, trust="accept")
        return self._stub.PlugPhone(request, timeout=CALL_TIMEOUT_S).phone

    def plug_all(self, plan: dict[str, str]) -> list[simulator_pb2.SimPhone]:
        """Plugs a phone of ``plan[port]`` into every port, all calls in flight at once."""
        calls = [
            self._stub.PlugPhone.future(
                simulator_pb2.PlugPhoneRequest(profile=profile, port=port, trust="accept"), timeout=CALL_TIMEOUT_S
            )
            for port, profile in plan.items()
        ]
        return [call.result().phone for call in calls]

    def unplug(self, port: str) -> None:
        self._stub.UnplugPhone(simulator_pb2.UnplugPhoneRequest(port=port), timeout=CALL_TIMEOUT_S)

    def close(self) -> None:
        self._channel.close()


class AdbCli:
    """The Debian ``adb`` client with a server of its own (own HOME and server port), stopped at the end."""

    def __init__(self, home: Path) -> None:
        self._home = home
        self._script = home / "adb_report.sh"
        self.env = clean_env({"HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(_free_port())})

    def __enter__(self) -> AdbCli:
        self._home.mkdir(parents=True, exist_ok=True)
        self._script.write_text(ADB_SCRIPT)
        self._adb("start-server")  # a technician's machine has its server running already
        return self

    def __exit__(self, *exc: object) -> None:
        self._adb("kill-server")

    def _adb(self, *args: str) -> str:
        done = subprocess.run(
            ["adb", *args], env=self.env, capture_output=True, text=True, timeout=CALL_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"adb {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def read(self, phone: simulator_pb2.SimPhone) -> int:
        """Runs the technician's script on ``phone``. :returns: its wall time in ns.

        :raises BenchError: when it fails or its output lacks the phone's serial or battery level.
        """
        target = phone.endpoint.removeprefix("tcp:")
        t0 = time.perf_counter_ns()
        done = subprocess.run(
            ["bash", str(self._script), target],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WAIT_S,
            check=False,
        )
        elapsed = time.perf_counter_ns() - t0
        if done.returncode != 0 or f"ro.serialno={phone.serial}" not in done.stdout or "level:" not in done.stdout:
            raise BenchError(f"the adb script on {target} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
        return elapsed


class Reader(Protocol):
    """A script that reads a plugged phone the way a technician would (the floor hwd is compared with)."""

    def read(self, phone: simulator_pb2.SimPhone) -> int:
        """Reads ``phone``. :returns: the script's wall time in ns. :raises BenchError: when it fails."""
        ...


def _free_port() -> int:
    """A TCP port free now on 127.0.0.1, for the adb server (never a fixed one: runs must not collide)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def one_phone(
    sim: SimPhones, watch: PortWatch, adb: Reader, plugs: int, pid: int, profile: str = PROFILE
) -> dict[str, Any]:
    """``plugs`` times: plug a phone of ``profile``, time it to READY, time the script ``adb`` on it, unplug it.

    :param pid: the daemon's, for its CPU time from each plug to the port ABSENT again.
    :returns: samples in ns ("hwd", "adb" for the script), the daemon's CPU seconds over those sessions ("cpu_s")
        and until READY ("ready_cpu_s"), and how many report fields hwd had read when the last
        phone was READY ("fields").
    """
    out: dict[str, Any] = {"hwd": [], "adb": [], "cpu_s": 0.0, "ready_cpu_s": 0.0}
    port = PORTS[0]
    for i in range(plugs + 1):  # the first plug warms up both: first connection, first key, lazy imports
        watch.until([port], ABSENT)
        cpu0, t0 = cpu_seconds(pid), time.perf_counter_ns()
        phone = sim.plug(profile, port)
        ready = watch.until([port], DONE)[port]
        ready_cpu = cpu_seconds(pid) - cpu0
        report = watch.latest[port]
        _check_report(report, phone)
        adb_ns = adb.read(phone)
        sim.unplug(port)
        watch.until([port], ABSENT)
        if i:
            out["hwd"].append(ready - t0)
            out["adb"].append(adb_ns)
            out["cpu_s"] += cpu_seconds(pid) - cpu0
            out["ready_cpu_s"] += ready_cpu
            out["fields"] = _available(report)
    return out


def _check_report(port: phones_pb2.Port, phone: simulator_pb2.SimPhone) -> None:
    """READY must carry the report of the phone just plugged (its serial, an iPhone's UDID), not an earlier one."""
    read = port.report.udid.text if phone.platform == "ios" else port.report.serial.text
    if read != phone.serial:
        raise BenchError(f"port {port.port} READY with serial {read!r}, plugged {phone.serial!r}")


def _available(port: phones_pb2.Port) -> int:
    fields = [f for f in port.report.DESCRIPTOR.fields if f.message_type is not None]
    return sum(getattr(port.report, f.name).availability == phones_pb2.AVAILABILITY_AVAILABLE for f in fields)


def crowd(sim: SimPhones, watch: PortWatch, plan: dict[str, str] | None = None) -> dict[str, Any]:
    """Phones plugged at once: ``plan[port]`` is each port's profile (default: CROWD in turn on all 32 ports).

    :returns: each port's plug-to-READY in ns and the time to the last.
    """
    plan = plan or {port: CROWD[i % len(CROWD)] for i, port in enumerate(PORTS)}
    ports = list(plan)
    watch.until(ports, ABSENT)
    t0 = time.perf_counter_ns()
    sim.plug_all(plan)
    ready = watch.until(ports, DONE)
    out = {"each": [ready[p] - t0 for p in ports], "all": max(ready.values()) - t0}
    for port in ports:
        sim.unplug(port)
    watch.until(ports, ABSENT)
    return out


def run_daemon(root: Path, plugs: int, idle_s: float) -> dict[str, Any]:
    """One ``hwd serve --simulated``: its CPU for ``idle_s`` without phones, the one-phone rounds, then
    the crowd, with the daemon's CPU and RSS."""
    out: dict[str, Any] = {}
    with HwdDaemon(root, simulated=True) as hwd, AdbCli(root / "adb-home") as adb:
        hwd.start()
        sim = SimPhones(hwd.socket_dir)
        try:
            with grpc.insecure_channel(hwd.target("tech")) as channel:
                watch = PortWatch(channel)
                try:
                    watch.until(PORTS, ABSENT)
                    cpu0 = cpu_seconds(hwd.pid)
                    time.sleep(idle_s)  # the daemon's own background work, for reading the CPU figures
                    out["idle_cpu_pct"] = (cpu_seconds(hwd.pid) - cpu0) / idle_s * 100
                    out["one"] = one_phone(sim, watch, adb, plugs, hwd.pid)
                    cpu0, sim0 = cpu_seconds(hwd.pid), cpu_seconds(sim.pid)
                    out["crowd"] = crowd(sim, watch)
                    out["crowd"]["cpu_s"] = cpu_seconds(hwd.pid) - cpu0
                    out["crowd"]["sim_cpu_s"] = cpu_seconds(sim.pid) - sim0
                    out["rss_mb"], out["peak_rss_mb"] = hwd.rss_mb(), hwd.peak_rss_mb()
                finally:
                    watch.close()
        finally:
            sim.close()
    return out


def run(section: Section, ctx: Context) -> None:
    """Runs benchmark 8 and records its figures in ``section``."""
    plugs = QUICK_PLUGS if ctx.counts == QUICK else PLUGS
    out = run_daemon(ctx.dir(NAME), plugs, ctx.counts.idle_seconds)
    one, many = out["one"], out["crowd"]
    hwd, adb = Summary.of_ns(one["hwd"]), Summary.of_ns(one["adb"])
    each = Summary.of_ns(many["each"])
    all_ms = many["all"] / 1e6
    section.add("ready_p50_ms", "one phone, plug to READY p50", hwd.p50, "ms")
    section.add("ready_p99_ms", "one phone, plug to READY p99", hwd.p99, "ms")
    section.add("adb_p50_ms", "adb CLI script, connect to last field p50", adb.p50, "ms")
    section.add("adb_p99_ms", "adb CLI script p99", adb.p99, "ms")
    section.add("ratio_p50", "ratio adb script / hwd, p50", adb.p50 / hwd.p50, "x", Goal(5.0, ">="))
    section.add("crowd_all_ms", f"{len(PORTS)} phones at once, until all READY", all_ms, "ms")
    section.add("crowd_p50_ms", f"{len(PORTS)} phones at once, each to READY p50", each.p50, "ms")
    section.add("crowd_ratio", f"{len(PORTS)} phones all READY / one phone p50", all_ms / hwd.p50, "x", Goal(3.0))
    section.add("idle_cpu_pct", "daemon CPU idle, no phone plugged", out["idle_cpu_pct"], "% core")
    section.add("ready_cpu_ms", "daemon CPU per phone, plug to READY", one["ready_cpu_s"] / plugs * 1e3, "ms")
    section.add("cpu_per_phone_ms", "daemon CPU per phone, plug to ABSENT", one["cpu_s"] / plugs * 1e3, "ms")
    section.add("crowd_cpu_s", f"daemon CPU for the {len(PORTS)} phones", many["cpu_s"], "s")
    section.add("crowd_sim_cpu_s", f"simulator CPU for the {len(PORTS)} phones", many["sim_cpu_s"], "s")
    section.add("rss_mb", f"daemon RSS after the {len(PORTS)} phones", out["rss_mb"], "MiB")
    section.add("peak_rss_mb", "daemon peak RSS", out["peak_rss_mb"], "MiB")
    section.details.update(ready_ms=vars(hwd), adb_ms=vars(adb), crowd_each_ms=vars(each), fields=one["fields"])
    _notes(section, plugs, one["fields"])


def _notes(section: Section, plugs: int, fields: int) -> None:
    section.notes.append(
        f"{plugs} plugs of a simulated {PROFILE} (Android 14) into port {PORTS[0]} after one warm-up, each timed "
        "from the simulator's PlugPhone call to the READY update on Phones.WatchPorts (tech.sock): discovery, "
        f"the ADB handshake with its debugging prompt answered at once, and the whole report ({fields} fields "
        "available on the last one, the IMEI from the dialer's *#06# screen as Android 14 refuses it to the shell)"
    )
    section.notes.append(
        "adb: the script ADB_SCRIPT of bench/phones.py run on the same phone while still plugged, with the "
        "Debian adb client and its server already running: adb connect, then one adb command per field as a "
        "technician's script does (each a new client process and ADB stream); it does not include noticing the plug"
    )
    section.notes.append(
        f"crowd: {len(PORTS)} phones of {len(CROWD)} profiles plugged with every PlugPhone call in flight at "
        "once, timed from before the first call to the last port READY; goal: at most 3x the one-phone p50"
    )
