"""A simulated iPhone's "Trust This Computer?" dialog and the hosts it trusts.

A host pairs by sending a PairRecord whose DeviceCertificate it made for the phone's own
public key. The customer accepts, refuses or ignores the dialog, after a delay: until they
answer, every Pair gets ``PairingDialogResponsePending`` (as a real iPhone answers, so hosts
retry); an answer given at once is the reply to the first Pair.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

from simulators.ios.tls import PhoneKey

log = logging.getLogger(__name__)

#: The PairRecord fields a host must send, with their plist types.
RECORD_FIELDS: dict[str, type] = {
    "DeviceCertificate": bytes,
    "HostCertificate": bytes,
    "RootCertificate": bytes,
    "HostID": str,
    "SystemBUID": str,
}
PENDING = "PairingDialogResponsePending"
DENIED = "UserDeniedPairing"
INVALID = "InvalidPairRecord"


@dataclass(frozen=True, slots=True)
class TrustedHost:
    """A computer the phone trusts: what StartSession checks and TLS presents."""

    host_id: str
    system_buid: str
    device_certificate: bytes
    escrow_bag: bytes


@dataclass(frozen=True, slots=True)
class PairOutcome:
    """The answer to one Pair: an error name, or the trusted host (``newly`` when just trusted)."""

    error: str = ""
    host: TrustedHost | None = None
    newly: bool = False


def check_record(record: object, key: PhoneKey) -> dict[str, Any] | str:
    """Validate a PairRecord sent with Pair.

    :returns: the record, or a message saying what is wrong with it.
    """
    if not isinstance(record, dict):
        return "PairRecord is missing or not a dictionary"
    for name, kind in RECORD_FIELDS.items():
        if not isinstance(record.get(name), kind) or not record[name]:
            return f"PairRecord field {name} is missing or not {kind.__name__}"
    public = record.get("DevicePublicKey")
    if public is not None and public != key.public_pem:
        return "PairRecord DevicePublicKey is not this phone's key"
    if not key.matches(record["DeviceCertificate"]):
        return "PairRecord DeviceCertificate is not a certificate for this phone's key"
    return record


class TrustDialog:
    """The phone's trust dialog and trusted hosts; lives as long as the phone (USB resets keep it)."""

    def __init__(self, answer: str, delay_s: float) -> None:
        """:param answer: ``accept``, ``refuse`` or ``ignore`` (validated by the caller).

        :param delay_s: how long the customer takes to answer.
        """
        self.answer = answer
        self.delay_s = delay_s
        self.hosts: dict[str, TrustedHost] = {}
        self.prompts_shown = 0
        self._asking: str = ""  # the HostID the open dialog is for
        self._decided: str = ""  # the customer's answer to it, once given
        self._timer: asyncio.TimerHandle | None = None

    @property
    def open(self) -> bool:
        """Whether the dialog is on screen, unanswered."""
        return bool(self._asking) and not self._decided

    def pair(self, record: dict[str, Any]) -> PairOutcome:
        """Handle a Pair with a valid ``record`` (see :func:`check_record`)."""
        host_id: str = record["HostID"]
        known = self.hosts.get(host_id)
        if known is not None and known.device_certificate == record["DeviceCertificate"]:
            return PairOutcome(host=known)
        if self._asking != host_id:
            self._show(host_id)
        if not self._decided:
            return PairOutcome(error=PENDING)
        decided, self._asking, self._decided = self._decided, "", ""
        if decided == "refuse":
            log.info("iPhone trust refused for host %s", host_id)
            return PairOutcome(error=DENIED)
        host = TrustedHost(host_id, record["SystemBUID"], record["DeviceCertificate"], os.urandom(32))
        self.hosts[host_id] = host
        log.info("iPhone trusts host %s", host_id)
        return PairOutcome(host=host, newly=True)

    def forget(self, host_id: str) -> bool:
        """Stop trusting a host (Unpair); whether it was trusted."""
        return self.hosts.pop(host_id, None) is not None

    def close(self) -> None:
        """Take the dialog down (unplug)."""
        if self._timer is not None:
            self._timer.cancel()
        self._asking = self._decided = ""

    def _show(self, host_id: str) -> None:
        self.close()
        self.prompts_shown += 1
        self._asking = host_id
        log.info("iPhone dialog: trust this computer (%s)?", host_id)
        if self.answer == "ignore":
            return
        if self.delay_s == 0:
            self._decided = self.answer
        else:
            self._timer = asyncio.get_running_loop().call_later(self.delay_s, self._answer)

    def _answer(self) -> None:
        self._decided = self.answer
