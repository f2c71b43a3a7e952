"""The header rules Envoy's HTTP connection manager and router apply, as pure functions.

Theory of operation: headers are a sequence of ``(name, value)`` byte pairs, in wire
order, names possibly in any case as an HTTP/1.1 peer sent them. Every function returns
a new list and leaves its input alone; names in the output are lower-case, as Envoy
keeps them (so an app's ``Content-Type`` reaches the client as ``content-type``).

``edit_headers`` is the one-pass primitive: it lower-cases, drops what is removed or
hop-by-hop, replaces what is set (in the place of its first occurrence, the way Envoy
replaces a header it already holds) and appends the rest. The named rules are thin
wrappers over it, one per Envoy behaviour:

- hop-by-hop headers never cross to HTTP/2 (``connection``, the names ``connection``
  lists, ``keep-alive``, ``proxy-connection``, ``transfer-encoding``, ``upgrade``, and
  ``te`` unless it is ``trailers``);
- ``server`` with ``server_header_transformation: OVERWRITE``;
- ``x-envoy-upstream-service-time`` set by the router, in milliseconds;
- ``x-envoy-decorator-operation``: an inbound (INGRESS) connection manager sets it on
  responses from the route's decorator, an outbound (EGRESS) one removes it;
- ``x-forwarded-proto``: overwritten from the downstream connection unless the previous
  hop is trusted (``xff_num_trusted_hops``) and already set it;
- ``x-request-id``: kept when present, else the UUID the caller generated;
- ``x-forwarded-client-cert`` with ``forward_client_cert_details`` and
  ``set_current_client_cert_details``: ``By=<local URI SAN>;Hash=<sha256 of the peer
  certificate's DER, hex>;Subject="<RFC 2253 subject>";URI=<peer URI SAN>;DNS=<peer DNS SAN>``,
  one ``By``/``URI``/``DNS`` pair per SAN, elements of several hops joined by ``,``.

The peer certificate is described once per distinct certificate
(``describe_peer_certificate`` keeps a bounded cache keyed by the DER bytes) and its
XFCC element formatted once per connection (``client_cert_element``); per request only
the header list is edited.

Pure: no clock (elapsed time and UUIDs are arguments), no sockets.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = [
    "HOP_BY_HOP_HEADERS",
    "PEER_CERTIFICATE_CACHE_SIZE",
    "ClientCertDetails",
    "ForwardClientCert",
    "Header",
    "PeerCertificate",
    "TrafficDirection",
    "apply_decorator_operation",
    "apply_forward_client_cert",
    "client_cert_element",
    "connection_tokens",
    "describe_peer_certificate",
    "edit_headers",
    "ensure_request_id",
    "forward_client_cert_edit",
    "get_header",
    "header_names",
    "lower_names",
    "overwrite_server",
    "set_forwarded_proto",
    "set_upstream_service_time",
    "strip_hop_by_hop",
]

Header = tuple[bytes, bytes]

_NOTHING: frozenset[bytes] = frozenset()
_EMPTY_TOKEN = frozenset([b""])
HOP_BY_HOP_HEADERS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te"}
)

SERVER = b"server"
UPSTREAM_SERVICE_TIME = b"x-envoy-upstream-service-time"
DECORATOR_OPERATION = b"x-envoy-decorator-operation"
FORWARDED_PROTO = b"x-forwarded-proto"
REQUEST_ID = b"x-request-id"
FORWARDED_CLIENT_CERT = b"x-forwarded-client-cert"


def _tokens(value: bytes) -> Iterable[bytes]:
    for part in value.split(b","):
        token = part.strip(b" \t").lower()
        if token:
            yield token


def connection_tokens(headers: Sequence[Header]) -> frozenset[bytes]:
    """The lower-cased tokens of every ``Connection`` header."""
    found: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            found.update(_tokens(value))
    return frozenset(found)


def _te_keeps_trailers(value: bytes) -> bool:
    return any(token.split(b";")[0].strip() == b"trailers" for token in _tokens(value))


def header_names(headers: Sequence[Header]) -> list[bytes]:
    """The lower-cased names of ``headers``, in order, lowered all at once (joined,
    lowered, split: no Python per header)."""
    if not headers:
        return []
    return b"\n".join([name for name, _ in headers]).lower().split(b"\n")


def edit_headers(
    headers: Sequence[Header],
    *,
    remove: Iterable[bytes] = (),
    replace: Sequence[Header] = (),
    append: Sequence[Header] = (),
    drop_hop_by_hop: bool = False,
    names: list[bytes] | None = None,
) -> list[Header]:
    """One pass: lower-case names, drop, replace in place, then append what was not there.

    ``remove`` and the names in ``replace`` must be lower-case. A name in ``replace`` replaces
    its first occurrence and drops the others; if it was absent it is appended, before
    ``append``. ``drop_hop_by_hop`` drops the hop-by-hop headers and keeps ``te`` only as
    ``te: trailers``. ``names``: ``header_names(headers)`` when the caller has it already.

    Only the headers named in ``remove``, ``replace`` or the hop-by-hop set take the slow
    path; the rest are copied as they are.
    """
    if names is None:
        names = header_names(headers)
    replacements = dict(replace)
    special = (HOP_BY_HOP_HEADERS if drop_hop_by_hop else _NOTHING).union(remove, replacements)
    out: list[Header]
    if special.isdisjoint(names):
        out = list(zip(names, [value for _, value in headers], strict=True))
    else:
        dropped = frozenset(remove)
        nominated = _NOTHING
        if drop_hop_by_hop and b"connection" in names:
            listed = b",".join(
                [
                    value
                    for name, (_, value) in zip(names, headers, strict=True)
                    if name == b"connection"
                ]
            )
            nominated = frozenset([token.strip(b" \t") for token in listed.lower().split(b",")])
            nominated -= _EMPTY_TOKEN
            special |= nominated
        out = []
        placed: set[bytes] = set()
        for name, (_, value) in zip(names, headers, strict=True):
            if name not in special:
                out.append((name, value))
            elif name in dropped:
                continue
            elif drop_hop_by_hop and (name in HOP_BY_HOP_HEADERS or name in nominated):
                keep_te = name == b"te" and b"te" not in nominated and b"te" not in placed
                if keep_te and _te_keeps_trailers(value):
                    placed.add(b"te")
                    out.append((b"te", b"trailers"))
            elif name not in placed:
                placed.add(name)
                out.append((name, replacements[name]))
        if placed:
            replacements = {k: v for k, v in replacements.items() if k not in placed}
    out.extend(replacements.items())
    if append:
        out.extend([(name.lower(), value) for name, value in append])
    return out


def lower_names(headers: Sequence[Header]) -> list[Header]:
    return edit_headers(headers)


def get_header(headers: Sequence[Header], name: bytes) -> bytes | None:
    """The first value of ``name`` (any case), or ``None``."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def strip_hop_by_hop(headers: Sequence[Header]) -> list[Header]:
    """The headers fit for HTTP/2: hop-by-hop ones dropped, ``te`` kept only as ``trailers``."""
    return edit_headers(headers, drop_hop_by_hop=True)


def overwrite_server(headers: Sequence[Header], server_name: str = "envoy") -> list[Header]:
    """``server_header_transformation: OVERWRITE``: ``server`` is the listener's server name.

    Istio's inbound listeners use ``istio-envoy``; outbound ones leave Envoy's default,
    ``envoy``.
    """
    return edit_headers(headers, replace=[(SERVER, server_name.encode())])


def set_upstream_service_time(headers: Sequence[Header], elapsed_ms: int) -> list[Header]:
    """The router's ``x-envoy-upstream-service-time``: whole milliseconds upstream took."""
    if elapsed_ms < 0:
        raise ValueError("elapsed_ms cannot be negative")
    return edit_headers(headers, replace=[(UPSTREAM_SERVICE_TIME, str(elapsed_ms).encode())])


class TrafficDirection(enum.Enum):
    """The listener's direction, which decides what tracing does with the decorator."""

    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


def apply_decorator_operation(
    response_headers: Sequence[Header], direction: TrafficDirection, operation: str | None
) -> list[Header]:
    """Inbound responses carry the route decorator's operation; outbound ones drop it.

    ``operation`` is the route's ``decorator.operation`` (Istio: ``<name>.<ns>:<port>/*``),
    or ``None`` when the route has no decorator (inbound responses are then untouched).
    """
    if direction is TrafficDirection.OUTBOUND:
        return edit_headers(response_headers, remove=[DECORATOR_OPERATION])
    if operation is None:
        return edit_headers(response_headers)
    return edit_headers(response_headers, replace=[(DECORATOR_OPERATION, operation.encode())])


def set_forwarded_proto(
    request_headers: Sequence[Header], *, tls: bool, xff_num_trusted_hops: int = 0
) -> list[Header]:
    """``x-forwarded-proto`` from the downstream connection (``https`` over TLS).

    With no trusted hops (Envoy's default) the value a client sent is replaced; with
    trusted hops it is kept when present.
    """
    value = b"https" if tls else b"http"
    if xff_num_trusted_hops > 0 and get_header(request_headers, FORWARDED_PROTO) is not None:
        return edit_headers(request_headers)
    return edit_headers(request_headers, replace=[(FORWARDED_PROTO, value)])


def ensure_request_id(request_headers: Sequence[Header], generated: str) -> list[Header]:
    """Keep the client's ``x-request-id``; set ``generated`` (a UUID4 string) when absent."""
    if get_header(request_headers, REQUEST_ID) is not None:
        return edit_headers(request_headers)
    return edit_headers(request_headers, replace=[(REQUEST_ID, generated.encode())])


# --- x-forwarded-client-cert -----------------------------------------------------------


class ForwardClientCert(enum.Enum):
    """``forward_client_cert_details`` of Envoy's HTTP connection manager."""

    SANITIZE = "SANITIZE"
    FORWARD_ONLY = "FORWARD_ONLY"
    APPEND_FORWARD = "APPEND_FORWARD"
    SANITIZE_SET = "SANITIZE_SET"
    ALWAYS_FORWARD_ONLY = "ALWAYS_FORWARD_ONLY"


@dataclass(frozen=True, slots=True)
class ClientCertDetails:
    """``set_current_client_cert_details``: which facts of the client certificate to add.

    Istio's sidecars set ``subject``, ``uri`` and ``dns``. (``cert`` and ``chain``, the
    URL-encoded PEM, are not supported.)
    """

    subject: bool = False
    uri: bool = False
    dns: bool = False


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What XFCC needs of a presented certificate, read once per connection."""

    sha256: str  # lower-case hex of the SHA-256 of the DER
    subject: str  # RFC 2253, as OpenSSL prints it
    uri_sans: tuple[str, ...] = ()
    dns_sans: tuple[str, ...] = ()


# OpenSSL's short names where they differ from RFC 4514's list.
_OPENSSL_NAMES: dict[ObjectIdentifier, str] = {
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "title",
    NameOID.INITIALS: "initials",
    NameOID.GENERATION_QUALIFIER: "generationQualifier",
    NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
    NameOID.JURISDICTION_COUNTRY_NAME: "jurisdictionC",
    NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME: "jurisdictionST",
    NameOID.JURISDICTION_LOCALITY_NAME: "jurisdictionL",
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
    NameOID.USER_ID: "UID",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.STREET_ADDRESS: "street",
}


PEER_CERTIFICATE_CACHE_SIZE = 256
"""Distinct client certificates whose description a process keeps (least recently used
out first): a client presents the same certificate on each of its connections."""


@functools.lru_cache(maxsize=PEER_CERTIFICATE_CACHE_SIZE)
def describe_peer_certificate(der: bytes) -> PeerCertificate:
    """Hash, subject and SANs of a DER certificate (``ValueError`` if it does not parse).

    A pure function of the DER bytes, so its results are cached by them (bounded, see
    ``PEER_CERTIFICATE_CACHE_SIZE``); a certificate that does not parse is not cached.
    """
    certificate = x509.load_der_x509_certificate(der)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
        dns = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        uris, dns = (), ()
    return PeerCertificate(
        sha256=hashlib.sha256(der).hexdigest(),
        subject=certificate.subject.rfc4514_string(_OPENSSL_NAMES),
        uri_sans=uris,
        dns_sans=dns,
    )


def client_cert_element(
    peer: PeerCertificate,
    details: ClientCertDetails,
    *,
    local_uri_sans: Sequence[str] = (),
) -> str:
    """This hop's XFCC element, in Envoy's key order: By, Hash, Subject, URI, DNS.

    ``By`` repeats for each URI SAN of the proxy's own certificate. ``Subject`` and
    ``URI`` are always present when asked for (empty if the certificate has none);
    ``DNS`` only when the certificate has DNS SANs.
    """
    parts = [f"By={uri}" for uri in local_uri_sans]
    parts.append(f"Hash={peer.sha256}")
    if details.subject:
        parts.append(f'Subject="{peer.subject}"')
    if details.uri:
        parts.extend([f"URI={uri}" for uri in peer.uri_sans] or ["URI="])
    if details.dns:
        parts.extend(f"DNS={name}" for name in peer.dns_sans)
    return ";".join(parts)


def forward_client_cert_edit(
    request_headers: Sequence[Header], mode: ForwardClientCert, element: str | None
) -> tuple[bool, Header | None]:
    """How Envoy changes ``x-forwarded-client-cert``: (drop the header, its new value).

    ``element`` is this hop's element from ``client_cert_element``, or ``None`` when the
    downstream connection is not TLS or presented no certificate.
    """
    if mode is ForwardClientCert.ALWAYS_FORWARD_ONLY:
        return False, None
    if mode is ForwardClientCert.SANITIZE or element is None:
        return True, None
    if mode is ForwardClientCert.FORWARD_ONLY:
        return False, None
    if mode is ForwardClientCert.SANITIZE_SET:
        return False, (FORWARDED_CLIENT_CERT, element.encode())
    previous = [v for k, v in request_headers if k.lower() == FORWARDED_CLIENT_CERT]
    return False, (FORWARDED_CLIENT_CERT, b",".join([*previous, element.encode()]))


def apply_forward_client_cert(
    request_headers: Sequence[Header], mode: ForwardClientCert, element: str | None
) -> list[Header]:
    """``x-forwarded-client-cert`` as Envoy sets it on a request (``forward_client_cert_edit``)."""
    drop, value = forward_client_cert_edit(request_headers, mode, element)
    return edit_headers(
        request_headers,
        remove=[FORWARDED_CLIENT_CERT] if drop else (),
        replace=[value] if value is not None else (),
    )
