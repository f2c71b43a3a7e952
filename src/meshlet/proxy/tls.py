"""TLS for the data path: ``ssl`` contexts from Envoy's TLS contexts, and TLS on memory BIOs.

Theory of operation.

Contexts. ``server_tls(DownstreamTlsContext, secrets)`` and ``client_tls(
UpstreamTlsContext, secrets)`` read the certificate from the SDS secrets the context
names (``tls_certificate_sds_secret_configs``) or from inline ``tls_certificates``, the
trusted CA from ``validation_context_sds_secret_config`` (alone or inside
``combined_validation_context``) or an inline ``validation_context``, and build an
``ssl.SSLContext`` with Envoy's defaults: TLS 1.2 minimum; TLS 1.3 maximum downstream and
TLS 1.2 upstream unless ``tls_params`` says otherwise; Envoy's default TLS 1.2 cipher
list unless ``cipher_suites`` is given; the ALPN list as configured. Downstream,
``require_client_certificate`` gives ``CERT_REQUIRED``; a trusted CA without it gives
``CERT_OPTIONAL`` (a presented certificate is verified); no CA gives ``CERT_NONE``.
Chain verification is OpenSSL's, which accepts the X.509 v1 certificates that
``openssl x509 -req`` makes. Private keys reach OpenSSL through an anonymous memory file
(``memfd``), never the disk.

``ssl`` has no per-connection verify callback, so the subject-alternative-name checks
(``match_typed_subject_alt_names``, and the older ``match_subject_alt_names``) run right
after the handshake, before a byte of application data: a mesh peer whose SPIFFE
identity does not match is refused there. A certificate's SANs are parsed once per
distinct certificate (a bounded cache keyed by its DER bytes, ``PEER_CACHE_SIZE``): a
client presents the same certificate on each of its connections, and the verdict is
still reached per connection.

``TlsContextCache`` keeps one context per TLS context proto and is emptied when the
secret provider reports a change, so the next handshake uses the new certificate while
connections already open keep theirs.

Streams. ``TlsStream`` runs an ``ssl.SSLObject`` over two memory BIOs on top of any
``ByteStream``: reads are at most ``READ_SIZE`` (32 KiB) of ciphertext at a time, so a
connection holds no more than that plus the socket's bounded buffer (asyncio's and
uvloop's own TLS transports allocate 256 KiB per connection). A failed handshake flushes
OpenSSL's alert to the peer before the connection is closed, so the client reports the
real cause (``certificate required``, ``unknown ca``, ``certificate expired``).
``accept_tls`` can start from bytes the caller already read (``initial``: the
ClientHello the listener's TLS inspector saw), so the first flight is answered without
waiting for the socket again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from cryptography import x509
from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from envoy.type.matcher.v3 import string_pb2

from meshlet.errors import TLSConfigError
from meshlet.proxy.streams import READ_SIZE, ByteStream

__all__ = [
    "PEER_CACHE_SIZE",
    "ClientTls",
    "SanMatcher",
    "SecretProvider",
    "ServerTls",
    "TlsContextCache",
    "TlsHandshakeError",
    "TlsStream",
    "accept_tls",
    "client_tls",
    "connect_tls",
    "peer_subject_alt_names",
    "san_matchers",
    "sans_match",
    "server_tls",
]


class SecretProvider(Protocol):
    """Secrets by SDS name, as SDS delivers them (``Secret`` protos)."""

    def get(self, name: str) -> Secret | None: ...

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(name)`` whenever the secret ``name`` changes."""
        ...


# Envoy's default TLS 1.2 cipher list (BoringSSL's equal-preference groups flattened).
_DEFAULT_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
)
_VERSIONS = {
    common_pb2.TlsParameters.TLSv1_0: ssl.TLSVersion.TLSv1,
    common_pb2.TlsParameters.TLSv1_1: ssl.TLSVersion.TLSv1_1,
    common_pb2.TlsParameters.TLSv1_2: ssl.TLSVersion.TLSv1_2,
    common_pb2.TlsParameters.TLSv1_3: ssl.TLSVersion.TLSv1_3,
}
_SAN_TYPES = {
    common_pb2.SubjectAltNameMatcher.EMAIL: "EMAIL",
    common_pb2.SubjectAltNameMatcher.DNS: "DNS",
    common_pb2.SubjectAltNameMatcher.URI: "URI",
    common_pb2.SubjectAltNameMatcher.IP_ADDRESS: "IP_ADDRESS",
}
_HANDSHAKE_TIMEOUT = 10.0


# --- subject alternative names (pure) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class SanMatcher:
    """One SAN check: ``san_type`` (``URI``, ``DNS``, ``EMAIL``, ``IP_ADDRESS`` or ``ANY``),
    how to compare (``exact``, ``prefix``, ``suffix``, ``contains``, ``regex``) and the value."""

    san_type: str
    how: str
    value: str
    ignore_case: bool = False

    def matches(self, san: str) -> bool:
        if self.how == "regex":
            return re.fullmatch(self.value, san) is not None
        left, right = (san.lower(), self.value.lower()) if self.ignore_case else (san, self.value)
        if self.how == "exact":
            if left == right:
                return True
            # A wildcard DNS SAN (*.example.com) covers one label of an exact DNS name.
            return (
                self.san_type in ("DNS", "ANY")
                and left.startswith("*.")
                and "." in right
                and right.split(".", 1)[1] == left[2:]
            )
        if self.how == "prefix":
            return left.startswith(right)
        if self.how == "suffix":
            return left.endswith(right)
        return right in left


def _string_matcher(matcher: string_pb2.StringMatcher, san_type: str, field: str) -> SanMatcher:
    which = matcher.WhichOneof("match_pattern")
    if which in ("exact", "prefix", "suffix", "contains"):
        return SanMatcher(san_type, which, getattr(matcher, which), matcher.ignore_case)
    if which == "safe_regex":
        try:
            re.compile(matcher.safe_regex.regex)
        except re.error as exc:
            raise TLSConfigError(f"invalid regex: {exc}", field=field) from exc
        return SanMatcher(san_type, "regex", matcher.safe_regex.regex)
    raise TLSConfigError(f"unsupported string matcher {which!r}", field=field)


def san_matchers(
    context: common_pb2.CertificateValidationContext,
) -> tuple[SanMatcher, ...]:
    """The SAN checks of a validation context, typed ones first."""
    found: list[SanMatcher] = []
    for index, typed in enumerate(context.match_typed_subject_alt_names):
        field = f"match_typed_subject_alt_names[{index}]"
        san_type = _SAN_TYPES.get(typed.san_type)
        if san_type is None:
            raise TLSConfigError("unsupported san_type", field=field)
        found.append(_string_matcher(typed.matcher, san_type, field))
    for index, plain in enumerate(context.match_subject_alt_names):
        found.append(_string_matcher(plain, "ANY", f"match_subject_alt_names[{index}]"))
    return tuple(found)


PEER_CACHE_SIZE = 256
"""How many distinct peer certificates' parsed facts a process keeps (least recently
used first out): a client presents the same certificate on every connection."""


def peer_subject_alt_names(der: bytes) -> dict[str, tuple[str, ...]]:
    """The SANs of a DER certificate by type (``URI``, ``DNS``, ``EMAIL``, ``IP_ADDRESS``)."""
    return dict(_cached_sans(der))


@functools.lru_cache(maxsize=PEER_CACHE_SIZE)
def _cached_sans(der: bytes) -> Mapping[str, tuple[str, ...]]:
    """``peer_subject_alt_names`` parsed once per distinct certificate (read-only)."""
    certificate = x509.load_der_x509_certificate(der)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return MappingProxyType({})
    return MappingProxyType(
        {
            "URI": tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
            "DNS": tuple(san.get_values_for_type(x509.DNSName)),
            "EMAIL": tuple(san.get_values_for_type(x509.RFC822Name)),
            "IP_ADDRESS": tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        }
    )


def sans_match(matchers: Sequence[SanMatcher], sans: Mapping[str, tuple[str, ...]]) -> bool:
    """Envoy's rule: with no matchers any certificate passes; else one SAN must match one."""
    if not matchers:
        return True
    for matcher in matchers:
        if matcher.san_type == "ANY":
            candidates = tuple(value for values in sans.values() for value in values)
        else:
            candidates = sans.get(matcher.san_type, ())
        if matcher.san_type == "IP_ADDRESS":
            candidates = tuple(_normal_ip(value) for value in candidates)
        if any(matcher.matches(candidate) for candidate in candidates):
            return True
    return False


def _normal_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


# --- building contexts -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A downstream TLS context ready to serve."""

    context: ssl.SSLContext
    san_matchers: tuple[SanMatcher, ...]
    require_client_certificate: bool
    local_uri_sans: tuple[str, ...] = ()  # the served certificate's URI SANs (XFCC ``By``)


@dataclass(frozen=True, slots=True)
class ClientTls:
    """An upstream TLS context ready to originate."""

    context: ssl.SSLContext
    server_name: str | None
    san_matchers: tuple[SanMatcher, ...]


def _data(source: core_base_pb2.DataSource, field: str) -> bytes:
    which = source.WhichOneof("specifier")
    if which == "inline_bytes":
        return bytes(source.inline_bytes)
    if which == "inline_string":
        return str(source.inline_string).encode()
    if which == "filename":
        try:
            with open(source.filename, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise TLSConfigError(
                f"cannot read {source.filename}: {exc.strerror}", field=field
            ) from exc
    raise TLSConfigError("empty data source", field=field)


def _secret(secrets: SecretProvider, name: str, field: str) -> Secret:
    secret = secrets.get(name)
    if secret is None:
        raise TLSConfigError(f"secret {name!r} is not available (SDS has not sent it)", field=field)
    return secret


def _load_certificate(
    context: ssl.SSLContext, certificate: common_pb2.TlsCertificate, field: str
) -> bytes:
    chain = _data(certificate.certificate_chain, f"{field}.certificate_chain")
    key = _data(certificate.private_key, f"{field}.private_key")
    password = (
        _data(certificate.password, f"{field}.password")
        if certificate.HasField("password")
        else None
    )
    descriptor = os.memfd_create("meshlet-tls", os.MFD_CLOEXEC)
    try:
        os.write(descriptor, key.rstrip(b"\n") + b"\n" + chain)
        context.load_cert_chain(f"/proc/self/fd/{descriptor}", password=password)
    except ssl.SSLError as exc:
        raise TLSConfigError(
            f"certificate and private key cannot be used: {exc.reason or exc}", field=field
        ) from exc
    finally:
        os.close(descriptor)
    return chain


def _certificates(
    context: ssl.SSLContext, common: tls_pb2.CommonTlsContext, secrets: SecretProvider
) -> list[bytes]:
    """Load every configured certificate; their PEM chains, in order."""
    chains = []
    for index, inline in enumerate(common.tls_certificates):
        chains.append(
            _load_certificate(context, inline, f"common_tls_context.tls_certificates[{index}]")
        )
    for index, config in enumerate(common.tls_certificate_sds_secret_configs):
        field = f"common_tls_context.tls_certificate_sds_secret_configs[{index}]"
        secret = _secret(secrets, config.name, field)
        if not secret.HasField("tls_certificate"):
            raise TLSConfigError(f"secret {config.name!r} holds no tls_certificate", field=field)
        chains.append(_load_certificate(context, secret.tls_certificate, field))
    return chains


def _uri_sans(chain: bytes) -> tuple[str, ...]:
    try:
        leaf = x509.load_pem_x509_certificates(chain)[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, IndexError, x509.ExtensionNotFound):
        return ()
    return tuple(san.get_values_for_type(x509.UniformResourceIdentifier))


def _validation(
    common: tls_pb2.CommonTlsContext, secrets: SecretProvider
) -> tuple[bytes | None, tuple[SanMatcher, ...]]:
    """The trusted CA (PEM) and the SAN matchers of a common TLS context."""
    trusted: bytes | None = None
    matchers: tuple[SanMatcher, ...] = ()
    which = common.WhichOneof("validation_context_type")
    if which == "validation_context":
        inline = common.validation_context
        matchers = san_matchers(inline)
        if inline.HasField("trusted_ca"):
            trusted = _data(inline.trusted_ca, "common_tls_context.validation_context.trusted_ca")
    elif which in ("validation_context_sds_secret_config", "combined_validation_context"):
        if which == "combined_validation_context":
            combined = common.combined_validation_context
            matchers = san_matchers(combined.default_validation_context)
            config = combined.validation_context_sds_secret_config
            field = "common_tls_context.combined_validation_context"
            if combined.default_validation_context.HasField("trusted_ca"):
                trusted = _data(combined.default_validation_context.trusted_ca, field)
        else:
            config = common.validation_context_sds_secret_config
            field = "common_tls_context.validation_context_sds_secret_config"
        if config.name:
            secret = _secret(secrets, config.name, field)
            if not secret.validation_context.HasField("trusted_ca"):
                raise TLSConfigError(f"secret {config.name!r} holds no trusted_ca", field=field)
            trusted = _data(secret.validation_context.trusted_ca, field)
    elif which is not None:
        raise TLSConfigError(f"unsupported {which}", field=f"common_tls_context.{which}")
    return trusted, matchers


def _apply_params(
    context: ssl.SSLContext, params: common_pb2.TlsParameters, default_max: ssl.TLSVersion
) -> None:
    minimum = _VERSIONS.get(params.tls_minimum_protocol_version, ssl.TLSVersion.TLSv1_2)
    maximum = _VERSIONS.get(params.tls_maximum_protocol_version, default_max)
    if minimum > maximum:
        raise TLSConfigError(
            "tls_minimum_protocol_version is above tls_maximum_protocol_version",
            field="common_tls_context.tls_params",
        )
    context.minimum_version = minimum
    context.maximum_version = maximum
    ciphers: list[str] = []
    for entry in params.cipher_suites or _DEFAULT_CIPHERS:
        ciphers.extend(part for part in entry.strip("[]").split("|") if part)
    try:
        context.set_ciphers(":".join(ciphers))
    except ssl.SSLError as exc:
        raise TLSConfigError(
            "no usable cipher in cipher_suites", field="common_tls_context.tls_params.cipher_suites"
        ) from exc
    if len(params.ecdh_curves) == 1:
        with contextlib.suppress(ValueError, ssl.SSLError):
            context.set_ecdh_curve(params.ecdh_curves[0])


def _trust(context: ssl.SSLContext, pem: bytes, field: str) -> None:
    try:
        context.load_verify_locations(cadata=pem.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as exc:
        raise TLSConfigError(f"trusted CA cannot be loaded: {exc}", field=field) from exc


def server_tls(proto: tls_pb2.DownstreamTlsContext, secrets: SecretProvider) -> ServerTls:
    """An ``ssl`` server context for a ``DownstreamTlsContext`` (``TLSConfigError`` if not)."""
    common = proto.common_tls_context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    _apply_params(context, common.tls_params, ssl.TLSVersion.TLSv1_3)
    chains = _certificates(context, common, secrets)
    if not chains:
        raise TLSConfigError(
            "a downstream TLS context needs a certificate", field="common_tls_context"
        )
    trusted, matchers = _validation(common, secrets)
    require = proto.require_client_certificate.value
    if trusted is not None:
        _trust(context, trusted, "common_tls_context")
        context.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_OPTIONAL
    elif require:
        raise TLSConfigError(
            "require_client_certificate needs a trusted CA", field="require_client_certificate"
        )
    else:
        context.verify_mode = ssl.CERT_NONE
    if common.alpn_protocols:
        context.set_alpn_protocols(list(common.alpn_protocols))
    return ServerTls(context, matchers, require, _uri_sans(chains[0]))


def client_tls(proto: tls_pb2.UpstreamTlsContext, secrets: SecretProvider) -> ClientTls:
    """An ``ssl`` client context for an ``UpstreamTlsContext`` (``TLSConfigError`` if not)."""
    common = proto.common_tls_context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # Envoy checks SANs only where the context asks
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    _apply_params(context, common.tls_params, ssl.TLSVersion.TLSv1_2)
    _certificates(context, common, secrets)
    trusted, matchers = _validation(common, secrets)
    if trusted is not None:
        _trust(context, trusted, "common_tls_context")
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    if common.alpn_protocols:
        context.set_alpn_protocols(list(common.alpn_protocols))
    return ClientTls(context, proto.sni or None, matchers)


class TlsContextCache:
    """Contexts per TLS context proto, emptied when a secret changes."""

    def __init__(self, secrets: SecretProvider) -> None:
        self.secrets = secrets
        self._server: dict[bytes, ServerTls] = {}
        self._client: dict[bytes, ClientTls] = {}
        secrets.subscribe(self._secret_changed)

    def _secret_changed(self, name: str) -> None:
        self._server.clear()
        self._client.clear()

    def server(self, proto: tls_pb2.DownstreamTlsContext) -> ServerTls:
        key = proto.SerializeToString(deterministic=True)
        found = self._server.get(key)
        if found is None:
            found = self._server[key] = server_tls(proto, self.secrets)
        return found

    def client(self, proto: tls_pb2.UpstreamTlsContext) -> ClientTls:
        key = proto.SerializeToString(deterministic=True)
        found = self._client.get(key)
        if found is None:
            found = self._client[key] = client_tls(proto, self.secrets)
        return found


# --- TLS on memory BIOs ----------------------------------------------------------------


class TlsHandshakeError(Exception):
    """A handshake that failed; ``reason`` is what Envoy's stats and logs would say."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TlsStream:
    """A ``ByteStream`` of plaintext over TLS on another ``ByteStream``."""

    def __init__(self, raw: ByteStream, sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO,
                 outgoing: ssl.MemoryBIO) -> None:  # fmt: skip
        self.raw = raw
        self._ssl = sslobj
        self._incoming = incoming
        self._outgoing = outgoing
        self._closed = False
        self.peer_certificate: bytes | None = None
        self.alpn_protocol: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed or self.raw.closed

    def at_eof(self) -> bool:
        at_eof = getattr(self.raw, "at_eof", None)
        return bool(at_eof and at_eof()) and self._incoming.pending == 0

    @property
    def version(self) -> str | None:
        return self._ssl.version()

    def get_extra_info(self, name: str) -> object:
        """The underlying connection's (``sockname``, ``peername`` …)."""
        get_extra_info = getattr(self.raw, "get_extra_info", None)
        return None if get_extra_info is None else get_extra_info(name)

    def _flush(self) -> bool:
        """Write what OpenSSL has for the peer; whether there was anything."""
        pending = self._outgoing.read()
        if pending:
            self.raw.write(pending)
        return bool(pending)

    async def _feed(self) -> None:
        data = await self.raw.read(READ_SIZE)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def handshake(self, initial: bytes = b"") -> None:
        """Run the handshake; ``initial`` is ciphertext already taken off the connection.

        A server given the peer's ClientHello in ``initial`` answers it at once; one that
        has nothing yet waits for bytes before asking OpenSSL (which could only say it
        wants them). Each flight is written in one piece, and ``drain`` is awaited only
        after a write.
        """
        sslobj, raw = self._ssl, self.raw
        if initial:
            self._incoming.write(initial)
        elif sslobj.server_side:
            await self._feed()
        while True:
            try:
                sslobj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if self._flush():
                    await raw.drain()
                await self._feed()
            except ssl.SSLError as exc:
                self._flush()  # the alert tells the peer why
                with contextlib.suppress(OSError):
                    await raw.drain()
                raise TlsHandshakeError(_reason(exc)) from exc
        if self._flush():
            await raw.drain()
        self.peer_certificate = sslobj.getpeercert(binary_form=True)
        self.alpn_protocol = sslobj.selected_alpn_protocol()

    async def read(self, max_bytes: int = READ_SIZE) -> bytes:
        sslobj, incoming = self._ssl, self._incoming
        while True:
            # Ask OpenSSL only when it has something to work on: asking with nothing
            # buffered costs a raised ``SSLWantReadError`` per read.
            if incoming.pending or incoming.eof or sslobj.pending():
                try:
                    return sslobj.read(max_bytes)
                except ssl.SSLWantReadError:
                    self._flush()  # a partial record
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""
                except ssl.SSLError as exc:
                    self._flush()
                    raise ConnectionResetError(f"TLS error: {_reason(exc)}") from exc
            await self._feed()

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self._ssl.write(data)
        self._flush()

    async def drain(self) -> None:
        await self.raw.drain()

    def write_eof(self) -> None:
        """Send ``close_notify`` (TLS has no half-close beyond it)."""
        with contextlib.suppress(ssl.SSLError, ValueError):
            self._ssl.unwrap()
        self._flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.write_eof()
            self.raw.close()

    def abort(self) -> None:
        self._closed = True
        self.raw.abort()


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")


async def accept_tls(
    raw: ByteStream,
    server: ServerTls,
    *,
    timeout: float = _HANDSHAKE_TIMEOUT,
    initial: bytes = b"",
) -> TlsStream:
    """Server handshake, then the SAN checks (``TlsHandshakeError`` on any failure).

    ``initial``: the first bytes of the connection when the caller already took them
    off the socket (the ClientHello the listener's TLS inspector saw).
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    stream = TlsStream(
        raw, server.context.wrap_bio(incoming, outgoing, server_side=True), incoming, outgoing
    )
    try:
        async with asyncio.timeout(timeout):
            await stream.handshake(initial)
    except TimeoutError as exc:
        raise TlsHandshakeError("handshake timeout") from exc
    except OSError as exc:
        raise TlsHandshakeError(f"connection error: {exc}") from exc
    _check_peer(stream, server.san_matchers)
    return stream


async def connect_tls(
    raw: ByteStream, client: ClientTls, *, timeout: float = _HANDSHAKE_TIMEOUT
) -> TlsStream:
    """Client handshake with SNI, then the server's SANs checked."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = client.context.wrap_bio(
        incoming, outgoing, server_side=False, server_hostname=client.server_name
    )
    stream = TlsStream(raw, sslobj, incoming, outgoing)
    try:
        async with asyncio.timeout(timeout):
            await stream.handshake()
    except TimeoutError as exc:
        raise TlsHandshakeError("handshake timeout") from exc
    except OSError as exc:
        raise TlsHandshakeError(f"connection error: {exc}") from exc
    if client.san_matchers and stream.peer_certificate is None:
        raise TlsHandshakeError("peer presented no certificate")
    _check_peer(stream, client.san_matchers)
    return stream


def _check_peer(stream: TlsStream, matchers: tuple[SanMatcher, ...]) -> None:
    if not matchers or stream.peer_certificate is None:
        return
    try:
        sans = _cached_sans(stream.peer_certificate)
    except ValueError:
        sans = {}
    if not sans_match(matchers, sans):
        raise TlsHandshakeError("certificate SAN does not match (ssl.fail_verify_san)")
