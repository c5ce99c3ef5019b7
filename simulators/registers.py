"""What a simulated Modbus unit offers the RTU line that serves it."""

from __future__ import annotations

from typing import Protocol

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
SLAVE_DEVICE_BUSY = 6


class ModbusError(Exception):
    """A Modbus exception response; ``code`` is the exception code sent back."""

    def __init__(self, code: int, why: str = "") -> None:
        super().__init__(why or f"modbus exception {code}")
        self.code = code


class RegisterUnit(Protocol):
    """One Modbus unit (slave) on the line. Every method raises ModbusError for a bad request."""

    @property
    def unit_id(self) -> int: ...

    def read_input(self, address: int, count: int) -> list[int]: ...

    def read_holding(self, address: int, count: int) -> list[int]: ...

    def write_holding(self, address: int, values: list[int]) -> None: ...
