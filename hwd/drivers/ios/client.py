"""pymobiledevice3's lockdown client, fitted to the kiosk (the only module that imports pymobiledevice3
at its top: import it lazily, inside the functions that read an iPhone).

Fitted how: connections go through :class:`~hwd.drivers.ios.usbmux.Usbmux` (capped, with
deadlines) to the DeviceID the reader chose; every message from the phone must arrive within
``stall_s`` and be at most :data:`MAX_MESSAGE_BYTES` long (pymobiledevice3 believes lengths up to
128 MiB); pair records come from and go to :class:`~hwd.drivers.ios.records.PairRecords` only
(never the user's home); and a dropped connection is reported instead of silently redialled,
because after Trust the phone's USB reset gives it a new DeviceID that only the reader waits for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pymobiledevice3 import exceptions as pmd3
from pymobiledevice3.ca import (
    build_device_certificate,
    build_host_certificate,
    build_root_certificate,
    serialize_cert_pem,
    serialize_private_key_pkcs8_pem,
)
from pymobiledevice3.lockdown import UsbmuxLockdownClient
from pymobiledevice3.pair_records import generate_host_id
from pymobiledevice3.service_connection import ServiceConnection
from pymobiledevice3.services.diagnostics import DiagnosticsService
from pymobiledevice3.usbmux import MuxDevice

from hwd.drivers.ios.failures import Dropped, Stalled
from hwd.drivers.ios.usbmux import LOCKDOWN_PORT, Usbmux

log = logging.getLogger(__name__)

#: The largest message accepted from lockdownd or a service (a full GetValue is ~10 KiB, an
#: IORegistry battery entry ~20 KiB).
MAX_MESSAGE_BYTES = 1024 * 1024
#: The IORegistry entry with the battery's health figures.
BATTERY_ENTRY = "AppleSmartBattery"


class CappedConnection(ServiceConnection):
    """A service connection whose every message has a size cap and a deadline."""

    max_frame_size = MAX_MESSAGE_BYTES
    stall_s = 10.0

    async def recv_prefixed(self, endianity: str = ">") -> bytes:
        try:
            async with asyncio.timeout(self.stall_s):
                return await super().recv_prefixed(endianity)
        except TimeoutError as exc:
            raise Stalled(f"the phone sent nothing for {self.stall_s:g} s") from exc


async def open_service(
    sock: socket.socket, device: MuxDevice, stall_s: float, ssl_context: Any = None
) -> ServiceConnection:
    """Binds a connected usbmuxd socket (the connection owns it from here, even on failure)."""
    connection = cast(
        CappedConnection, await CappedConnection.from_socket(sock, ssl_context=ssl_context, mux_device=device)
    )
    connection.stall_s = stall_s
    return connection


class KioskLockdown(UsbmuxLockdownClient):
    """A lockdown client on one DeviceID of one phone.

    :param service: the open lockdownd connection.
    :param mux: how further service connections are opened.
    :param devid: the phone's usbmuxd DeviceID.
    :param buid: the host's SystemBUID (usbmuxd's ReadBUID).
    :param stall_s: the longest the phone may take to send one message.
    """

    def __init__(self, service: ServiceConnection, *, udid: str, mux: Usbmux, devid: int, buid: str, stall_s: float):
        super().__init__(service, generate_host_id(), identifier=udid, label="hwd", system_buid=buid)
        self._mux = mux
        self._devid = devid
        self._stall_s = stall_s

    async def fetch_pair_record(self) -> None:
        """Pair records come from the reader's store only (it sets ``pair_record``)."""

    async def save_pair_record(self) -> None:
        """Pair records go to the reader's store only (it saves them after Pair)."""

    async def areestablish_connection(self) -> None:
        """A dropped lockdown connection is the reader's to handle (it may be the reset after Trust)."""
        raise Dropped("the phone closed the lockdown connection")

    async def create_service_connection(
        self, port: int, ssl_context: Any = None, strip_ssl: bool = False
    ) -> ServiceConnection:
        sock = await self._mux.connect(self._devid, port)
        return await open_service(
            sock, MuxDevice(self._devid, self.identifier or "", "USB"), self._stall_s, ssl_context
        )

    async def initialize(self) -> None:
        """QueryType and GetValue of every root value (``all_values``), as an unpaired phone gives them."""
        await self._initialize()

    async def request_pair(self, options: dict[str, Any]) -> dict[str, Any]:
        """One Pair request (raises PairingDialogResponsePending while the dialog is open)."""
        return await self._request("Pair", options)

    async def domain(self, name: str) -> dict[str, Any] | None:
        """The values of a lockdown domain; None when the phone does not give it."""
        try:
            values = await self.get_value(name)
        except (pmd3.MissingValueError, pmd3.GetProhibitedError, pmd3.InvalidServiceError):
            return None
        return values if isinstance(values, dict) else None

    async def battery_registry(self) -> dict[str, Any] | None:
        """diagnostics_relay's IORegistry entry of the battery; None when the phone does not give it."""
        try:
            service = await self.start_lockdown_service(DiagnosticsService.SERVICE_NAME)
        except (pmd3.StartServiceError, pmd3.PasswordRequiredError, pmd3.LockdownError):
            return None
        try:
            found = await _battery_entry(DiagnosticsService(self, service=service))
            # Goodbye only after an answer: a cancelled read (an unplug) must not wait on the phone.
            await _goodbye(service, {"Request": "Goodbye"})
            return found
        finally:
            await service.close()

    async def goodbye(self) -> None:
        """Ends the session and says Goodbye, as libimobiledevice does before it closes (best effort)."""
        await _goodbye(self.service, {"Label": self.label, "Request": "Goodbye"})


async def _battery_entry(relay: DiagnosticsService) -> dict[str, Any] | None:
    """The battery's IORegistry entry, asked for by name, then by class; None when neither gives one."""
    # libimobiledevice's `idevicediagnostics ioregentry` asks by name; older relays by class
    for query in ({"name": BATTERY_ENTRY}, {"ioclass": "IOPMPowerSource"}):
        try:
            found = await relay.ioregistry(**query)
        except (pmd3.ProtocolError, pmd3.ConnectionTerminatedError):
            raise
        except pmd3.PyMobileDevice3Exception:
            continue  # the relay answered a failure status: try the other form
        if isinstance(found, dict) and found:
            return found
    return None


async def _goodbye(service: ServiceConnection, message: dict[str, Any]) -> None:
    """Tells a service the host is leaving, so it closes its end first (a phone that is gone is ignored)."""
    try:
        await service.send_recv_plist(message)
    except Exception as exc:  # leaving anyway: a failure here changes nothing
        log.debug("goodbye unanswered: %r", exc)


async def connect_lockdown(mux: Usbmux, udid: str, devid: int, buid: str, stall_s: float) -> KioskLockdown:
    """Opens lockdownd on the phone and reads what it gives before a session.

    :raises: pymobiledevice3, socket or :class:`~hwd.errors.PhoneError` failures (map them with
        :func:`hwd.drivers.ios.failures.phone_error`).
    """
    sock = await mux.connect(devid, LOCKDOWN_PORT)
    service = await open_service(sock, MuxDevice(devid, udid, "USB"), stall_s)
    try:
        client = KioskLockdown(service, udid=udid, mux=mux, devid=devid, buid=buid, stall_s=stall_s)
        await client.initialize()
    except BaseException:
        await service.close()
        raise
    return client


@dataclass(frozen=True)
class KioskIdentity:
    """The kiosk's pairing identity: one root and one host key, as libimobiledevice keeps one pair
    per host. Each phone gets only its own device certificate (a signature: ~1 ms), where making
    the two RSA keys took ~80 ms of CPU a phone. The keys never leave the kiosk: a phone gets the
    certificates, not the private keys."""

    root_key: rsa.RSAPrivateKey
    host_key: rsa.RSAPrivateKey
    root_pem: bytes
    host_pem: bytes


_IDENTITIES: dict[Path, KioskIdentity] = {}
_IDENTITY_LOCK = threading.Lock()
ROOT_KEY_FILE, HOST_KEY_FILE = "kiosk-root-key.pem", "kiosk-host-key.pem"


def _private_key(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        staging = path.with_name(f".{path.name}.new")
        fd = os.open(staging, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(serialize_private_key_pkcs8_pem(key))
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, path)
    loaded = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return loaded


def kiosk_identity(record_dir: Path) -> KioskIdentity:
    """The identity kept in ``record_dir`` (made on first use, mode 0600). Blocking: run it in a thread.

    :raises OSError: the directory cannot be read or written.
    :raises ValueError: a key file is not an RSA private key.
    """
    with _IDENTITY_LOCK:
        if record_dir not in _IDENTITIES:
            record_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            root_key, host_key = _private_key(record_dir / ROOT_KEY_FILE), _private_key(record_dir / HOST_KEY_FILE)
            root = build_root_certificate(root_key, hashes.SHA256())
            host = build_host_certificate(host_key, root, root_key, hashes.SHA256())
            _IDENTITIES[record_dir] = KioskIdentity(
                root_key, host_key, serialize_cert_pem(root), serialize_cert_pem(host)
            )
        return _IDENTITIES[record_dir]


def pairing_material(
    client: KioskLockdown, device_public_key: bytes, identity: KioskIdentity
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Pair request's options and the pair record to keep once it is accepted.

    :returns: (options, record); the record still lacks the EscrowBag the phone sends back.
    :raises ValueError: ``device_public_key`` is not an RSA public key in PEM.
    """
    device_key = serialization.load_pem_public_key(device_public_key)
    if not isinstance(device_key, rsa.RSAPublicKey):
        raise ValueError("the phone's DevicePublicKey is not an RSA key")
    root = x509.load_pem_x509_certificate(identity.root_pem)
    device = build_device_certificate(device_key, root, identity.root_key, hashes.SHA256())
    sent = {
        "DeviceCertificate": serialize_cert_pem(device),
        "HostCertificate": identity.host_pem,
        "HostID": client.host_id,
        "RootCertificate": identity.root_pem,
        "WiFiMACAddress": client.wifi_mac_address,
        "SystemBUID": client.system_buid,
    }
    pair_record = {key: value for key, value in sent.items() if value is not None}
    options = {
        "HostName": socket.gethostname(),
        "PairRecord": pair_record,
        "ProtocolVersion": "2",
        "PairingOptions": {"ExtendedPairingErrors": True},
    }
    record = {**pair_record, "HostPrivateKey": serialize_private_key_pkcs8_pem(identity.host_key)}
    return options, record
