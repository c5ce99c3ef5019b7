"""What a simulated Android phone needs from its profile to speak ADB.

The real profiles live in :mod:`simulators.android.profiles`; any object with these attributes
works, which keeps the protocol code testable with a small fake.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

#: The banner properties ``adb devices -l`` shows, in the order adbd sends them.
BANNER_KEYS = ("ro.product.name", "ro.product.model", "ro.product.device")


class ShellOutput(Protocol):
    """What one shell command printed and how it ended."""

    @property
    def stdout(self) -> bytes:
        """Standard output."""
        ...

    @property
    def stderr(self) -> bytes:
        """Standard error."""
        ...

    @property
    def exit_code(self) -> int:
        """Exit status, 0 to 255."""
        ...


class AdbProfile(Protocol):
    """The answers of one phone model: its banner, serial, features and shell."""

    @property
    def name(self) -> str:
        """Profile name, e.g. ``"pixel-7"``."""
        ...

    @property
    def serial(self) -> str:
        """The serial the phone reports (``ro.serialno``)."""
        ...

    @property
    def banner_props(self) -> Mapping[str, str]:
        """``ro.product.name``, ``ro.product.model`` and ``ro.product.device``."""
        ...

    @property
    def features(self) -> Collection[str]:
        """ADB features the phone advertises, e.g. ``shell_v2``, ``cmd``."""
        ...

    def run(self, command: str) -> ShellOutput:
        """Run a shell command as the phone's ``/system/bin/sh`` would; never raises."""
        ...


class CatalogProfile(AdbProfile, Protocol):
    """A profile as listed to users of the simulator."""

    @property
    def manufacturer(self) -> str:
        """E.g. ``"Google"``."""
        ...

    @property
    def model(self) -> str:
        """E.g. ``"Pixel 7"``."""
        ...

    @property
    def os_version(self) -> str:
        """E.g. ``"14"``."""
        ...

    @property
    def description(self) -> str:
        """One line on what is special about it."""
        ...


def device_banner(profile: AdbProfile) -> bytes:
    """The CNXN payload adbd sends: ``device::key=value;...;features=a,b,c``."""
    props = "".join(f"{key}={profile.banner_props.get(key, '')};" for key in BANNER_KEYS)
    return f"device::{props}features={','.join(profile.features)}".encode()
