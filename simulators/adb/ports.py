"""The kiosk's phone ports: the ``phones`` device, where simulated phones are plugged and unplugged.

Ports are USB port paths ``1-1.1`` to ``1-1.32``. Each plugged Android phone listens on its own
TCP port on 127.0.0.1 (see :class:`simulators.adb.phone.AdbPhone`); an unplug closes its listener
and every connection at once. An iPhone (a profile of platform ``ios``) appears in the simulated
usbmuxd instead (see :class:`simulators.ios.iphone.IPhone`). Watchers get every plug and unplug,
and an iPhone's USB reset as an unplug then a plug (see :meth:`PhonePorts.watch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import cast

from simulators.adb.faults import FAULTS
from simulators.adb.phone import PAYLOADS, AdbPhone
from simulators.adb.profile import CatalogProfile
from simulators.adb.trust import TrustStore, trust_answer, trust_delay
from simulators.adb.watch import PhoneChange, PhoneInfo, PhoneWatch
from simulators.errors import SimDeviceError
from simulators.ios.faults import FAULTS as IPHONE_FAULTS
from simulators.ios.iphone import IPhone
from simulators.ios.pairing import TrustDialog
from simulators.ios.spec import IphoneProfile
from simulators.ios.usbmuxd import UsbmuxdSim

log = logging.getLogger(__name__)

PORTS = tuple(f"1-1.{number}" for number in range(1, 33))
#: The iPhone trust answer that also resets USB right after the customer trusts a computer.
ACCEPT_RESET = "accept-reset"

Profile = CatalogProfile | IphoneProfile
Phone = AdbPhone | IPhone


def platform_of(profile: Profile) -> str:
    """``"ios"`` or ``"android"``."""
    return "ios" if getattr(profile, "platform", "android") == "ios" else "android"


def iphone_trust(text: str) -> tuple[str, bool]:
    """An iPhone's trust answer: ``accept`` (when empty), ``refuse``, ``ignore`` or ``accept-reset``.

    :returns: the answer and whether a USB reset follows each trust.
    :raises ValueError: not one of those.
    """
    if text == ACCEPT_RESET:
        return "accept", True
    return trust_answer(text), False


class UnknownProfile(LookupError):
    """No phone profile has that name."""


class UnknownPort(LookupError):
    """No such port, or no phone on it."""


class PortTaken(Exception):
    """The port asked for holds a phone already, or every port does."""


def offered_payload(profile: CatalogProfile) -> int:
    """The maximum payload a phone of ``profile`` offers: 256 KiB before Android 9, else 1 MiB."""
    major = profile.os_version.split(".", 1)[0]
    return PAYLOADS[0] if major.isdigit() and int(major) < 9 else PAYLOADS[1]


class PhonePorts:
    """The ``phones`` device: plugs simulated phones of named profiles into the kiosk's ports.

    Faults act on one phone, chosen by the ``port`` parameter (it may be left out when exactly
    one phone is plugged); see :class:`simulators.adb.faults.PhoneFaults` for each fault.
    """

    name = "phones"
    kind = "phone-ports"

    def __init__(
        self,
        load_profiles: Callable[[], Mapping[str, Profile]],
        ports: tuple[str, ...] = PORTS,
        usbmuxd: UsbmuxdSim | None = None,
    ):
        """:param load_profiles: reads every profile, by name; called once, in a thread, by :meth:`start`.

        :param ports: the port paths, in the order free ports are handed out.
        :param usbmuxd: where plugged iPhones appear; without it iPhone profiles cannot be plugged.
        """
        self._load_profiles = load_profiles
        self._ports = ports
        self._usbmuxd = usbmuxd
        self._profiles: dict[str, Profile] = {}
        self._phones: dict[str, Phone] = {}
        self._watches: set[PhoneWatch] = set()
        self._lock = asyncio.Lock()
        self._running = False

    @property
    def endpoint(self) -> str:
        """The range of port paths, e.g. ``ports:1-1.1..1-1.32``; each phone has its own endpoint."""
        return f"ports:{self._ports[0]}..{self._ports[-1]}"

    @property
    def state(self) -> str:
        """E.g. ``no phones`` or ``1 phone: 1-1.1 pixel-7 (awaiting trust)``."""
        if not self._phones:
            return "no phones"
        count = len(self._phones)
        listed = "; ".join(f"{port} {phone.profile.name} ({phone.state})" for port, phone in self._phones.items())
        return f"{count} phone{'' if count == 1 else 's'}: {listed}"

    @property
    def faults(self) -> list[str]:
        """The faults a phone takes (with param ``port``): Android's, then the iPhone's own."""
        return list(dict.fromkeys((*FAULTS, *IPHONE_FAULTS)))

    async def start(self) -> None:
        """Load the profiles; nothing is plugged.

        :raises Exception: the profiles could not be loaded.
        """
        self._profiles = dict(await asyncio.to_thread(self._load_profiles))
        self._running = True
        log.info("phone ports %s with %d profiles", self.endpoint, len(self._profiles))

    async def stop(self) -> None:
        """Unplug every phone and end every watch."""
        self._running = False
        await self._unplug_all()
        for watch in list(self._watches):
            watch.end()

    async def reset(self) -> None:
        """Unplug every phone (watchers see each unplug)."""
        await self._unplug_all()

    async def fault(self, name: str, params: dict[str, str]) -> None:
        """Inject fault ``name`` into the phone on port ``params["port"]``.

        :raises ValueError: no such fault, no phone on that port (or no port given while
            several or no phones are plugged), or a bad parameter.
        """
        rest = dict(params)
        port = rest.pop("port", "")
        if not port and len(self._phones) == 1:
            port = next(iter(self._phones))
        phone = self._phones.get(port)
        if phone is None:
            plugged = ", ".join(self._phones) or "none"
            raise ValueError(f"fault {name!r} needs param port with a plugged phone (plugged: {plugged})")
        phone.fault(name, rest)

    def profiles(self) -> list[Profile]:
        """Every profile, sorted by name."""
        return [self._profiles[name] for name in sorted(self._profiles)]

    def phones(self) -> list[PhoneInfo]:
        """The phones plugged now, in port order."""
        return [self._info(self._phones[port]) for port in self._ports if port in self._phones]

    async def plug(self, profile: str, port: str = "", trust: str = "", trust_delay_s: float = 0.0) -> PhoneInfo:
        """Plug a phone of ``profile`` into ``port`` (the first free port when empty).

        :param trust: the customer's answer to the prompt: ``accept`` (when empty), ``refuse``,
            ``ignore``; for an iPhone also ``accept-reset`` (accept, then a USB reset).
        :param trust_delay_s: how long the customer takes to answer.
        :returns: the phone, listening.
        :raises UnknownProfile: no such profile.
        :raises UnknownPort: no such port.
        :raises PortTaken: the port, or every port, holds a phone.
        :raises ValueError: a bad trust answer or delay.
        :raises SimDeviceError: the ports are not running, or the phone could not listen.
        """
        delay = trust_delay(trust_delay_s)
        found = self._profiles.get(profile)
        if found is None:
            raise UnknownProfile(f"no phone profile {profile!r} (profiles: {', '.join(sorted(self._profiles))})")
        async with self._lock:
            chosen = self._free_port(port)
            phone = self._make_phone(found, chosen, trust, delay)
            try:
                await phone.start()
            except OSError as exc:
                raise SimDeviceError(f"phone on {chosen} cannot listen: {exc}") from exc
            self._phones[chosen] = phone
            info = self._info(phone)
            self._notify(PhoneChange(attached=True, phone=info))
            return info

    async def unplug(self, port: str) -> PhoneInfo:
        """Unplug the phone on ``port``: its listener and connections close at once.

        :returns: the phone as it was.
        :raises UnknownPort: no phone is plugged there.
        """
        async with self._lock:
            phone = self._phones.get(port)
            if phone is None:
                raise UnknownPort(f"no phone on port {port!r} (plugged: {', '.join(self._phones) or 'none'})")
            return await self._unplug(phone)

    @contextlib.contextmanager
    def watch(self) -> Iterator[PhoneWatch]:
        """Follow plugs and unplugs: the phones plugged now first (as attached), then each change.

        The watch holds at most :data:`simulators.adb.watch.WATCH_CAPACITY` changes; a watcher that
        falls further behind is ended with :attr:`PhoneWatch.overflowed` set.
        """
        watch = PhoneWatch()
        for info in self.phones():
            watch.push(PhoneChange(attached=True, phone=info))
        self._watches.add(watch)
        try:
            yield watch
        finally:
            self._watches.discard(watch)

    def _make_phone(self, profile: Profile, port: str, trust: str, delay_s: float) -> Phone:
        if platform_of(profile) == "ios":
            if self._usbmuxd is None:
                raise SimDeviceError("this kiosk has no usbmuxd: iPhones cannot be plugged")
            answer, reset = iphone_trust(trust)
            dialog = TrustDialog(answer, delay_s)
            iphone = cast(IphoneProfile, profile)
            return IPhone(iphone, port, self._usbmuxd, dialog, lambda attached: self._usb_change(port, attached), reset)
        android = cast(CatalogProfile, profile)
        # A copy of its own: a phone's shell remembers things (what its screen shows).
        return AdbPhone(
            copy.deepcopy(android), port, TrustStore(trust_answer(trust), delay_s), offered_payload(android)
        )

    def _usb_change(self, port: str, attached: bool) -> None:
        """An iPhone's USB reset: watchers see it leave, then come back."""
        phone = self._phones.get(port)
        if phone is not None:
            self._notify(PhoneChange(attached=attached, phone=self._info(phone)))

    def _free_port(self, port: str) -> str:
        if not self._running:
            raise SimDeviceError("the phone ports are not running")
        if not port:
            free = next((candidate for candidate in self._ports if candidate not in self._phones), None)
            if free is None:
                raise PortTaken(f"every port holds a phone ({len(self._ports)} ports)")
            return free
        if port not in self._ports:
            raise UnknownPort(f"no port {port!r} (ports: {self.endpoint.removeprefix('ports:')})")
        if port in self._phones:
            raise PortTaken(f"port {port} holds a phone already ({self._phones[port].profile.name})")
        return port

    async def _unplug(self, phone: Phone) -> PhoneInfo:
        info = self._info(phone)
        del self._phones[phone.port]
        await phone.stop()
        self._notify(PhoneChange(attached=False, phone=info))
        return info

    async def _unplug_all(self) -> None:
        async with self._lock:
            for phone in list(self._phones.values()):
                await self._unplug(phone)

    def _notify(self, change: PhoneChange) -> None:
        for watch in list(self._watches):
            watch.push(change)

    @staticmethod
    def _info(phone: Phone) -> PhoneInfo:
        return PhoneInfo(
            port=phone.port,
            profile=phone.profile.name,
            serial=phone.profile.serial,
            endpoint=phone.endpoint,
            state=phone.state,
            platform="ios" if isinstance(phone, IPhone) else "android",
        )
