"""What a simulated iPhone needs from its profile.

The real profiles live in :mod:`simulators.ios.profiles`; any object with these attributes
works, which keeps the protocol code testable with a small fake.
"""

from __future__ import annotations

from typing import Protocol


class IphoneProfile(Protocol):
    """The answers of one iPhone model."""

    @property
    def name(self) -> str:
        """Profile name, e.g. ``"iphone-13"``."""
        ...

    @property
    def manufacturer(self) -> str:
        """``"Apple"``."""
        ...

    @property
    def model(self) -> str:
        """Marketing name, e.g. ``"iPhone 13"``."""
        ...

    @property
    def os_version(self) -> str:
        """E.g. ``"17.5.1"``."""
        ...

    @property
    def serial(self) -> str:
        """The UDID, e.g. ``"00008110-001A2C3E0E38801E"``."""
        ...

    @property
    def description(self) -> str:
        """One line on what is special about it."""
        ...

    @property
    def platform(self) -> str:
        """``"ios"``."""
        ...

    @property
    def product_type(self) -> str:
        """E.g. ``"iPhone14,5"``."""
        ...

    def values(self, domain: str | None, paired: bool) -> dict[str, object]:
        """What lockdownd's GetValue answers for a whole domain (None: the root domain).

        :param paired: False gives only what an unpaired iPhone tells.
        """
        ...

    def ioregistry(self, entry_class: str) -> dict[str, object] | None:
        """The IORegistry entry of ``entry_class`` (e.g. ``"AppleSmartBattery"``), or None."""
        ...
