"""One connection to a simulated iPhone's lockdownd (device port 62078).

Requests are u32 big-endian length + plist; every reply echoes ``Request`` and carries either
the answer or ``Error``. After StartSession the same socket speaks TLS (the phone as server)
until StopSession. Replies go through the phone's faults (see :func:`send_reply`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from simulators.ios.faults import HUGE_LENGTH, IphoneFaults
from simulators.ios.pairing import INVALID, TrustDialog, TrustedHost, check_record
from simulators.ios.plist_wire import WireError, lockdown_frame
from simulators.ios.spec import IphoneProfile
from simulators.ios.tls import FrameReader, Link, LinkClosed, PhoneKey, PlainLink, TlsLink

log = logging.getLogger(__name__)

LOCKDOWN_PORT = 62078
LOCKDOWN_TYPE = "com.apple.mobile.lockdown"
#: How long a connection may sit between requests, and the most one request may take to arrive.
IDLE_DEADLINE_S = 300.0
#: How long a TLS handshake may take.
HANDSHAKE_DEADLINE_S = 10.0


class Dropped(Exception):
    """The ``drop`` fault: the connection is cut instead of answering."""


async def send_reply(link: Link, faults: IphoneFaults, body: dict[str, Any]) -> None:
    """Send one reply the way the phone's faults say (late, stalled, garbled or not at all).

    :raises Dropped: the ``drop`` fault took this reply; close the connection.
    :raises LinkClosed: the peer is gone.
    """
    await faults.before_reply()
    if faults.take("drop"):
        raise Dropped()
    if faults.take("huge-length"):
        await link.write(HUGE_LENGTH.to_bytes(4, "big"))
    elif faults.take("malformed-plist"):
        garbage = b"<?xml version='1.0'?><plist><dict><key>Request</key><strin"
        await link.write(len(garbage).to_bytes(4, "big") + garbage)
    else:
        await link.write(lockdown_frame(body))


class PhoneSide(Protocol):
    """What a lockdownd connection needs from its phone."""

    profile: IphoneProfile
    dialog: TrustDialog
    faults: IphoneFaults

    @property
    def key(self) -> PhoneKey:
        """The phone's own RSA key."""
        ...

    async def context_for(self, host: TrustedHost) -> Any:
        """The TLS server context (``ssl.SSLContext``) for a session with ``host``."""
        ...

    def open_service(self, name: str, host: TrustedHost) -> int | None:
        """Start service ``name`` for one connection; its device port, or None if unknown."""
        ...

    def trusted(self, host: TrustedHost) -> None:
        """The customer has just trusted ``host`` (the reply is out)."""
        ...


class LockdownConnection:
    """Serves one host connection to lockdownd until it says Goodbye, closes, or the phone is unplugged."""

    def __init__(self, phone: PhoneSide, plain: PlainLink) -> None:
        self._phone = phone
        self._plain = plain
        self._link: PlainLink | TlsLink = plain
        self._frames = FrameReader()
        self._session: TrustedHost | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "QueryType": self._query_type,
            "GetValue": self._get_value,
            "Pair": self._pair,
            "ValidatePair": self._validate_pair,
            "Unpair": self._unpair,
            "StartSession": self._start_session,
            "StopSession": self._stop_session,
            "StartService": self._start_service,
        }

    async def serve(self) -> None:
        """Answer requests; returns when the host leaves or the connection is cut."""
        try:
            while await self._one():
                pass
        except (LinkClosed, Dropped) as exc:
            log.debug("lockdownd connection of %s ends: %r", self._phone.profile.serial, exc)
        finally:
            self._plain.writer.close()

    async def _one(self) -> bool:
        request = await self._frames.next(self._link, IDLE_DEADLINE_S)
        if isinstance(request, WireError):
            log.info("lockdownd of %s got garbage: %s", self._phone.profile.serial, request.reason)
            return False
        name = request.get("Request")
        if name == "Goodbye":
            await send_reply(self._link, self._phone.faults, {"Request": "Goodbye", "Result": "Success"})
            return False
        handler = self._handlers.get(name) if isinstance(name, str) else None
        reply = await handler(request) if handler else {"Error": "InvalidRequest"}
        public = {key: value for key, value in reply.items() if not key.startswith("_")}
        await send_reply(self._link, self._phone.faults, {"Request": name, **public})
        await self._after(name, reply)
        return True

    async def _after(self, name: object, reply: dict[str, Any]) -> None:
        """Switch TLS on or off once a session reply is out, and report a fresh trust."""
        if "Error" in reply:
            return
        if name == "StartSession" and self._session is not None:
            tls = TlsLink(self._plain, await self._phone.context_for(self._session))
            await tls.handshake(HANDSHAKE_DEADLINE_S)
            self._link = tls
        elif name == "StopSession" and isinstance(self._link, TlsLink):
            self._link = await self._link.finish(IDLE_DEADLINE_S)
            self._session = None
        elif name == "Pair" and reply.pop("_newly", False):
            host = self._phone.dialog.hosts.get(reply.pop("_host", ""))
            if host is not None:
                self._phone.trusted(host)

    async def _query_type(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"Type": LOCKDOWN_TYPE}

    async def _get_value(self, request: dict[str, Any]) -> dict[str, Any]:
        domain, key = request.get("Domain"), request.get("Key")
        if (domain is not None and not isinstance(domain, str)) or (key is not None and not isinstance(key, str)):
            return {"Error": "InvalidRequest"}
        echo = {name: value for name, value in (("Domain", domain), ("Key", key)) if value is not None}
        paired = self._session is not None
        values = self._values(domain or None, paired)
        if key is None:
            if values or not domain:
                return {**echo, "Value": values}
            return {**echo, "Error": "MissingValue" if paired or not self._values(domain, True) else "InvalidHostID"}
        if key in values:
            return {**echo, "Value": values[key]}
        protected = not paired and key in self._values(domain or None, True)
        return {**echo, "Error": "InvalidHostID" if protected else "MissingValue"}

    def _values(self, domain: str | None, paired: bool) -> dict[str, Any]:
        values = dict(self._phone.profile.values(domain, paired))
        if domain is None:
            values["DevicePublicKey"] = self._phone.key.public_pem
        return values

    async def _pair(self, request: dict[str, Any]) -> dict[str, Any]:
        record = check_record(request.get("PairRecord"), self._phone.key)
        if isinstance(record, str):
            log.info("iPhone %s refuses a pair record: %s", self._phone.profile.serial, record)
            return {"Error": INVALID}
        outcome = self._phone.dialog.pair(record)
        if outcome.error or outcome.host is None:
            return {"Error": outcome.error}
        reply: dict[str, Any] = {"EscrowBag": outcome.host.escrow_bag}
        if outcome.newly:
            reply.update(_newly=True, _host=outcome.host.host_id)
        return reply

    async def _validate_pair(self, request: dict[str, Any]) -> dict[str, Any]:
        record = request.get("PairRecord")
        host = self._phone.dialog.hosts.get(record.get("HostID", "")) if isinstance(record, dict) else None
        return {} if host is not None else {"Error": "InvalidHostID"}

    async def _unpair(self, request: dict[str, Any]) -> dict[str, Any]:
        record = request.get("PairRecord")
        host_id = record.get("HostID", "") if isinstance(record, dict) else ""
        return {} if self._phone.dialog.forget(host_id) else {"Error": "InvalidHostID"}

    async def _start_session(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._session is not None:
            return {"Error": "SessionActive"}
        host = self._phone.dialog.hosts.get(request.get("HostID", ""))
        if host is None:
            return {"Error": "InvalidHostID"}
        self._session = host
        return {"SessionID": str(uuid.uuid4()).upper(), "EnableSessionSSL": True}

    async def _stop_session(self, request: dict[str, Any]) -> dict[str, Any]:
        return {} if self._session is not None else {"Error": "NoRunningSession"}

    async def _start_service(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("Service")
        if self._session is None:
            return {"Error": "InvalidHostID"}
        port = self._phone.open_service(name, self._session) if isinstance(name, str) else None
        if port is None:
            return {"Error": "InvalidService"}
        return {"Service": name, "Port": port, "EnableServiceSSL": True}
