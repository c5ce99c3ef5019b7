"""What the cable carousel and the bin lock controllers report: pure value types, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Connector(enum.Enum):
    """The cable connector held in one carousel slot (the controller's CONNECTOR codes)."""

    EMPTY = 0
    USB_C = 1
    LIGHTNING = 2
    MICRO_USB = 3
    USB_A = 4
    UNKNOWN = -1  # a code the register map does not define (newer firmware); never guessed


class CableTest(enum.Enum):
    """The outcome of the last cable test of one slot (the controller's CABLE_TEST codes)."""

    NEVER = 0
    PASS = 1
    OPEN = 2
    SHORT = 3


class CommandResult(enum.Enum):
    """The controller's LAST_RESULT: how the last accepted command ended."""

    OK = 0
    RUNNING = 1
    FAILED = 2
    UNKNOWN = -1


CAROUSEL_FAULTS = {0: "NONE", 1: "JAM", 2: "OVER_CURRENT", 3: "HOMING_FAILED"}
LOCK_FAULTS = {0: "NONE", 1: "BOLT_JAMMED", 2: "SENSORS_DISAGREE"}


@dataclass(frozen=True)
class ControllerIdentity:
    """Who a controller says it is.

    ``vendor`` and ``model`` are the raw register values (0x4857 is "HW"); ``firmware`` reads
    "major.minor", e.g. "1.2".
    """

    vendor: int
    model: int
    firmware: str


@dataclass(frozen=True)
class CarouselState:
    """One consistent reading of the carousel controller.

    ``current_slot`` is None when no slot is aligned (not homed, moving, jammed); ``target_slot``
    is None before the first move. ``connectors[n]`` is the connector of slot n.
    """

    homed: bool
    moving: bool
    in_position: bool
    testing: bool
    fault: bool
    fault_code: int
    jam: bool
    over_current: bool
    current_slot: int | None
    target_slot: int | None
    slot_count: int
    connectors: tuple[Connector, ...]
    command_counter: int
    last_result: CommandResult

    @property
    def fault_name(self) -> str:
        """The fault as a stable name ("NONE", "JAM", ...; "UNKNOWN_<code>" for other codes)."""
        return CAROUSEL_FAULTS.get(self.fault_code, f"UNKNOWN_{self.fault_code}")


@dataclass(frozen=True)
class LockState:
    """One consistent reading of the bin lock controller.

    ``bolt_extended`` and ``door_closed`` are the sensors; ``unlock_output`` is what was commanded.
    ``tamper`` and ``forced`` stay set until cleared.
    """

    bolt_extended: bool
    door_closed: bool
    unlock_output: bool
    tamper: bool
    forced: bool
    relock_pending: bool
    fault: bool
    fault_code: int
    relock_remaining_s: int
    door_open_s: int
    command_counter: int

    @property
    def fault_name(self) -> str:
        """The fault as a stable name ("NONE", "BOLT_JAMMED", ...; "UNKNOWN_<code>" for other codes)."""
        return LOCK_FAULTS.get(self.fault_code, f"UNKNOWN_{self.fault_code}")

    @property
    def locked(self) -> bool:
        """True when the bin is secure: door shut and bolt out."""
        return self.bolt_extended and self.door_closed
