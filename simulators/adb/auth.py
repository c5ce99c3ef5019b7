"""ADB authentication on the phone's side: tokens, signatures, and adb's public key format.

The host proves it holds a key the phone trusts by signing a 20-byte random token with RSA
PKCS#1 v1.5, the token standing in for a SHA-1 digest. A host the phone does not know sends
its public key instead: base64 of Android's ``RSAPublicKey`` struct (u32 word count, u32
n0inv, the modulus and R^2 as little-endian u32 arrays, then the exponent), a space and a
``user@host`` comment, NUL-terminated.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

TOKEN_SIZE = 20
#: The largest public key message accepted: a 4096-bit key's struct in base64 plus a comment.
MAX_KEY_MESSAGE = 4096
#: Key sizes accepted, in 32-bit words (1024 to 4096 bits).
_MIN_WORDS, _MAX_WORDS = 32, 128


def new_token() -> bytes:
    """A fresh random token to send in AUTH TOKEN."""
    return os.urandom(TOKEN_SIZE)


def verify(key: rsa.RSAPublicKey, token: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s PKCS#1 v1.5 signature of ``token`` taken as a SHA-1 digest."""
    if len(token) != TOKEN_SIZE:
        return False
    try:
        key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
    except (InvalidSignature, ValueError):
        return False
    return True


def signed_by_any(keys: Iterable[rsa.RSAPublicKey], token: bytes, signature: bytes) -> bool:
    """Whether one of ``keys`` made ``signature`` over ``token``."""
    return any(verify(key, token, signature) for key in keys)


@dataclass(frozen=True, slots=True)
class HostKey:
    """A host's public key as sent in AUTH RSAPUBLICKEY."""

    key: rsa.RSAPublicKey
    comment: str

    @property
    def fingerprint(self) -> str:
        """The modulus's first 8 hex digits, enough to tell keys apart in logs."""
        return format(self.key.public_numbers().n, "x")[:8]


def parse_host_key(message: bytes) -> HostKey | str:
    """Parse an AUTH RSAPUBLICKEY payload.

    Total: any input gives a key or the reason it is not one.

    :returns: the key, or a string saying what is wrong with ``message``.
    """
    if len(message) > MAX_KEY_MESSAGE:
        return f"public key message of {len(message)} bytes is too long"
    text = message.split(b"\0", 1)[0]
    encoded, _, comment = text.partition(b" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "public key is not base64"
    key = _android_rsa_key(raw)
    if isinstance(key, str):
        return key
    return HostKey(key, comment.decode("utf-8", errors="replace").strip())


def _android_rsa_key(raw: bytes) -> rsa.RSAPublicKey | str:
    """Android's ``RSAPublicKey`` struct to a key, checking its internal consistency."""
    numbers = _struct_numbers(raw)
    if isinstance(numbers, str):
        return numbers
    n0inv, modulus, exponent = numbers
    # n0inv is -1/n mod 2**32: a cheap check that the struct was not garbled.
    if modulus % 2 == 0 or (n0inv * modulus) % 2**32 != 2**32 - 1:
        return "public key n0inv does not match its modulus"
    if exponent < 3 or exponent % 2 == 0:
        return f"public key exponent {exponent} is not a valid RSA exponent"
    try:
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError as exc:
        return f"public key is not a valid RSA key: {exc}"


def _struct_numbers(raw: bytes) -> tuple[int, int, int] | str:
    """``(n0inv, modulus, exponent)`` from the struct's bytes, or what is wrong with its size."""
    if len(raw) < 8:
        return "public key struct is truncated"
    words, n0inv = struct.unpack_from("<II", raw)
    if not _MIN_WORDS <= words <= _MAX_WORDS:
        return f"public key has {words} words, not {_MIN_WORDS} to {_MAX_WORDS}"
    size = 4 * words
    if len(raw) != 8 + 2 * size + 4:
        return f"public key struct is {len(raw)} bytes, not {8 + 2 * size + 4} for {words} words"
    (exponent,) = struct.unpack_from("<I", raw, 8 + 2 * size)
    return n0inv, int.from_bytes(raw[8 : 8 + size], "little"), exponent


def android_key_message(key: rsa.RSAPublicKey, comment: str) -> bytes:
    """The AUTH RSAPUBLICKEY payload a host sends for ``key`` (used to check the parser).

    :raises ValueError: the key's size is not a whole number of 32-bit words in range.
    """
    numbers = key.public_numbers()
    words = key.key_size // 32
    if key.key_size % 32 or not _MIN_WORDS <= words <= _MAX_WORDS:
        raise ValueError(f"key size {key.key_size} is not supported")
    n0inv = (-pow(numbers.n, -1, 2**32)) % 2**32
    rr = pow(2, 2 * key.key_size, numbers.n)
    raw = struct.pack("<II", words, n0inv) + numbers.n.to_bytes(4 * words, "little")
    raw += rr.to_bytes(4 * words, "little") + struct.pack("<I", numbers.e)
    return base64.b64encode(raw) + b" " + comment.encode() + b"\0"
