"""A simulated iPhone's RSA key, its TLS server contexts, and the byte links lockdownd runs over.

The phone is the TLS server of a session or service, presenting the DeviceCertificate the
host made for it at pairing (with the phone's own key); clients do not verify it, and it does
not ask for theirs. TLS runs over memory BIOs so that a session can end (StopSession) and the
same socket go on in plain text, as lockdownd's clients expect.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.ios.plist_wire import LOCKDOWN_HEADER, WireError, decode_plist, lockdown_header

#: Chunk size of one read from the peer.
READ_CHUNK = 64 * 1024
#: The first byte of a TLS record (change_cipher_spec, alert, handshake, application_data).
TLS_RECORD_TYPES = frozenset(range(20, 24))
TLS_RECORD_HEADER = 5


class LinkClosed(Exception):
    """The peer closed the connection, or a read overran its deadline."""


_DEVICE_KEYS: dict[str, PhoneKey] = {}
_DEVICE_KEYS_LOCK = threading.Lock()


def device_key(udid: str) -> PhoneKey:
    """The key of the phone ``udid``: made on its first plug and kept, as a real iPhone keeps its key
    for life (and a plug need not wait ~0.2 s for a new 2048-bit key). Thread-safe; call it in a thread."""
    with _DEVICE_KEYS_LOCK:
        if udid not in _DEVICE_KEYS:
            _DEVICE_KEYS[udid] = PhoneKey.generate()
        return _DEVICE_KEYS[udid]


class PhoneKey:
    """The phone's own RSA key pair; its public half is the ``DevicePublicKey`` lockdownd gives."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        """:param key: the phone's private key (see :meth:`generate`)."""
        self.key = key

    @classmethod
    def generate(cls) -> PhoneKey:
        """A fresh 2048-bit key; takes tens of milliseconds, so call it in a thread."""
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @property
    def public_pem(self) -> bytes:
        """The public key as PKCS#1 PEM (``BEGIN RSA PUBLIC KEY``), the form lockdownd uses."""
        return self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)

    def matches(self, certificate_pem: bytes) -> bool:
        """Whether ``certificate_pem`` is a certificate for this phone's public key."""
        try:
            with warnings.catch_warnings():
                # libimobiledevice gives its certificates serial number 0, which cryptography frowns on.
                warnings.simplefilter("ignore")
                public = x509.load_pem_x509_certificate(certificate_pem).public_key()
        except ValueError:
            return False
        return (
            isinstance(public, rsa.RSAPublicKey) and public.public_numbers() == self.key.public_key().public_numbers()
        )

    def server_context(self, certificate_pem: bytes) -> ssl.SSLContext:
        """A TLS server context presenting ``certificate_pem`` with this key; blocking (files), call it in a thread.

        :raises ssl.SSLError: the certificate does not fit the key.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # Hosts sign the device certificate with SHA-1 (libimobiledevice) and speak old ciphers.
        context.set_ciphers("ALL:!aNULL:!eNULL:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.verify_mode = ssl.CERT_NONE
        key_pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        # The ssl module only loads certificates from files: a private directory, gone at once.
        with tempfile.TemporaryDirectory(prefix="iphone-tls-") as directory:
            cert_path, key_path = Path(directory, "device.pem"), Path(directory, "device.key")
            cert_path.write_bytes(certificate_pem)
            key_path.touch(mode=0o600)
            key_path.write_bytes(key_pem)
            context.load_cert_chain(cert_path, key_path)
        return context


class Link(Protocol):
    """A byte stream to a host, plain or TLS."""

    async def read(self, deadline_s: float) -> bytes:
        """Some bytes (at most :data:`READ_CHUNK`). :raises LinkClosed: closed or past the deadline."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data``. :raises LinkClosed: the peer is gone."""
        ...


class PlainLink:
    """The raw connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pushed_back = b""

    async def read(self, deadline_s: float) -> bytes:
        """See :meth:`Link.read`."""
        if self.pushed_back:
            data, self.pushed_back = self.pushed_back, b""
            return data
        try:
            async with asyncio.timeout(deadline_s):
                data = await self.reader.read(READ_CHUNK)
        except (TimeoutError, OSError) as exc:
            raise LinkClosed(str(exc) or type(exc).__name__) from exc
        if not data:
            raise LinkClosed("end of stream")
        return data

    async def write(self, data: bytes) -> None:
        """See :meth:`Link.write`."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except OSError as exc:
            raise LinkClosed(str(exc)) from exc


class TlsLink:
    """TLS (phone as server) over a :class:`PlainLink`, which it can hand back after the session."""

    def __init__(self, plain: PlainLink, context: ssl.SSLContext) -> None:
        self.plain = plain
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def handshake(self, deadline_s: float) -> None:
        """Complete the TLS handshake. :raises LinkClosed: closed, refused or past the deadline."""
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                self._incoming.write(await self.plain.read(deadline_s))
            except ssl.SSLError as exc:
                raise LinkClosed(f"TLS handshake failed: {exc}") from exc
        await self._flush()

    async def read(self, deadline_s: float) -> bytes:
        """See :meth:`Link.read`; a close_notify reads as the end of the stream."""
        while True:
            try:
                data = self._tls.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                self._incoming.write(await self.plain.read(deadline_s))
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError) as exc:
                raise LinkClosed("TLS closed") from exc
            except ssl.SSLError as exc:
                raise LinkClosed(f"TLS error: {exc}") from exc
            else:
                if not data:  # the peer's close_notify
                    raise LinkClosed("TLS closed")
                return data

    async def write(self, data: bytes) -> None:
        """See :meth:`Link.write`."""
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise LinkClosed(f"TLS error: {exc}") from exc
        await self._flush()

    async def finish(self, deadline_s: float) -> PlainLink:
        """End the session's TLS and go on in plain text.

        A client may send its close_notify first (libimobiledevice; under TLS 1.3 it travels as
        an application-data record) or go straight on in plain text. A TLS record's first byte
        (20 to 23) cannot start a plist length under the cap, so it tells the two apart; the
        records are taken whole, and whatever follows them is plain text. No close_notify is
        sent back: the client reads plain text already.

        :raises LinkClosed: closed or past the deadline.
        """
        pending = self._incoming.read()
        while True:
            if not pending:
                pending = await self.plain.read(deadline_s)
            if pending[0] not in TLS_RECORD_TYPES:
                self.plain.pushed_back = pending
                return self.plain
            while len(pending) < TLS_RECORD_HEADER:
                pending += await self.plain.read(deadline_s)
            size = TLS_RECORD_HEADER + int.from_bytes(pending[3:5], "big")
            while len(pending) < size:
                pending += await self.plain.read(deadline_s)
            self._incoming.write(pending[:size])
            pending = pending[size:]
            try:
                self._tls.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                continue  # a record that is not the close_notify (e.g. a session ticket ack)
            except ssl.SSLError:
                pass  # the close_notify, or an alert: the TLS part is over either way
            self.plain.pushed_back = pending
            return self.plain

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            await self.plain.write(data)


class FrameReader:
    """Reads lockdownd frames (u32 big-endian length + plist) from a link, each within a deadline."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    async def next(self, link: Link, deadline_s: float) -> dict[str, Any] | WireError:
        """The next plist, or why the bytes are not one.

        :raises LinkClosed: the link closed or the deadline passed.
        """
        length = await self._take(link, LOCKDOWN_HEADER.size, deadline_s)
        size = lockdown_header(length)
        if isinstance(size, WireError):
            return size
        return decode_plist(await self._take(link, size, deadline_s))

    async def _take(self, link: Link, size: int, deadline_s: float) -> bytes:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while len(self._buffer) < size:
            chunk = await link.read(max(0.0, end - loop.time()))
            if not chunk:  # a link never returns nothing; if one did, this must not spin
                raise LinkClosed("end of stream")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data
