"""Per-socket allow-lists: deny by default, every name a real method, AddNote for technicians only."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

import hwd.rpc.pb.hwd.v1 as hwd_v1
from hwd.rpc.auth import ALLOWED, HEALTH, REFLECTION, TECH, UI
from hwd.rpc.pb.hwd.v1 import kiosk_pb2

KIOSK_METHODS = {f"/hwd.v1.Kiosk/{m.name}" for m in kiosk_pb2.DESCRIPTOR.services_by_name["Kiosk"].methods}


def _services() -> dict[str, ServiceDescriptor]:
    """Every service of the hwd.v1 stubs, the health service and reflection, by full name."""
    modules = [health_pb2, reflection_pb2]
    for info in pkgutil.iter_modules(hwd_v1.__path__):
        if info.name.endswith("_pb2"):
            modules.append(importlib.import_module(f"{hwd_v1.__name__}.{info.name}"))
    return {s.full_name: s for m in modules for s in m.DESCRIPTOR.services_by_name.values()}


SERVICES = _services()


def _exists(full_name: str) -> bool:
    service, _, method = full_name.removeprefix("/").partition("/")
    return service in SERVICES and method in SERVICES[service].methods_by_name


def test_the_roles_are_ui_and_tech_only() -> None:
    assert set(ALLOWED) == {UI, TECH}


def test_tech_may_call_every_kiosk_method() -> None:
    assert len(KIOSK_METHODS) >= 6
    assert ALLOWED[TECH] >= KIOSK_METHODS


def test_ui_may_not_add_notes() -> None:
    assert "/hwd.v1.Kiosk/AddNote" in KIOSK_METHODS
    assert "/hwd.v1.Kiosk/AddNote" not in ALLOWED[UI]


@pytest.mark.parametrize("method", ["GetStatus", "WatchEvents", "AcquireLease", "RenewLease", "ReleaseLease"])
def test_ui_may_use_status_events_and_leases(method: str) -> None:
    assert f"/hwd.v1.Kiosk/{method}" in ALLOWED[UI]


def test_reflection_only_on_tech() -> None:
    assert ALLOWED[TECH] >= REFLECTION
    assert not REFLECTION & ALLOWED[UI]
    assert "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" in REFLECTION


@pytest.mark.parametrize("role", [UI, TECH])
def test_health_on_both_sockets(role: str) -> None:
    assert {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"} <= HEALTH <= ALLOWED[role]


@pytest.mark.parametrize("name", sorted(ALLOWED[TECH] | ALLOWED[UI]))
def test_every_allowed_name_is_well_formed(name: str) -> None:
    assert name.startswith("/")
    assert name.count("/") == 2


@pytest.mark.parametrize("name", sorted(n for n in ALLOWED[TECH] | ALLOWED[UI] if n.startswith("/hwd.v1.")))
def test_every_allowed_hwd_name_is_a_real_method(name: str) -> None:
    assert _exists(name), f"{name} is in an allow-list but no such rpc is defined"


@pytest.mark.parametrize("name", sorted(HEALTH | {n for n in REFLECTION if ".v1alpha." in n}))
def test_every_allowed_standard_name_is_a_real_method(name: str) -> None:
    assert _exists(name)


def test_a_misspelt_name_is_not_found() -> None:
    assert not _exists("/hwd.v1.Kiosk/AddNotes")
    assert not _exists("/hwd.v1.Kiosks/AddNote")


def test_the_lease_id_is_read_from_request_metadata() -> None:
    from hwd.rpc.auth import LEASE_METADATA, lease_id

    assert lease_id([("user-agent", "x"), (LEASE_METADATA, "abc")]) == "abc"
    assert lease_id([(LEASE_METADATA, b"abc")]) == "abc"
    assert lease_id([("other", "abc")]) is None
    assert lease_id(None) is None
