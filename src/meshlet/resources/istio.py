"""Typed models of the Istio kinds meshlet acts on: Sidecar, PeerAuthentication and
DestinationRule.

Theory of operation: a ``Resource`` has already passed its kind's schema, so every
field has the right JSON type or is ``null``. ``from_resource`` reads the body the
way Istio's protobuf decoding does: an absent or ``null`` scalar is its zero value
(``""``, ``0``, ``False``, the first enum member), an absent message is ``None``, an
absent list or map is empty. The few places where Istio tells "absent" from "empty"
keep that difference (``workload_selector`` None vs ``{}``, ``mtls_mode`` None vs
``UNSET``, a ``null`` ingress entry as ``None``), because validation and policy
composition depend on it.

Map keys that the API types as integers (``portLevelMtls``) arrive as strings or
numbers in YAML; a key that is not an integer cannot be modelled, and
``from_resource`` raises ``ConfigError`` naming it (``validate`` reports the same
problem as a finding first).

Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from meshlet.errors import ConfigError
from meshlet.resources.objects import Resource

__all__ = [
    "CaptureMode",
    "ClientTLSMode",
    "ClientTLSSettings",
    "DestinationRule",
    "IstioEgressListener",
    "IstioIngressListener",
    "MTLSMode",
    "PeerAuthentication",
    "ServerTLSSettings",
    "Sidecar",
    "SidecarPort",
    "TLSCertificate",
    "TLSMode",
    "TLSProtocol",
    "client_tls_settings",
    "parse_port_key",
    "server_tls_settings",
]


class TLSMode(enum.Enum):
    """``ServerTLSSettings.TLSmode``; PASSTHROUGH is the proto3 default."""

    PASSTHROUGH = "PASSTHROUGH"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    AUTO_PASSTHROUGH = "AUTO_PASSTHROUGH"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"
    OPTIONAL_MUTUAL = "OPTIONAL_MUTUAL"


class TLSProtocol(enum.Enum):
    """``ServerTLSSettings.TLSProtocol``; TLS_AUTO is the default."""

    TLS_AUTO = "TLS_AUTO"
    TLSV1_0 = "TLSV1_0"
    TLSV1_1 = "TLSV1_1"
    TLSV1_2 = "TLSV1_2"
    TLSV1_3 = "TLSV1_3"


class MTLSMode(enum.Enum):
    """``PeerAuthentication.MutualTLS.Mode``; UNSET inherits from the parent level."""

    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


class CaptureMode(enum.Enum):
    """How traffic reaches a Sidecar listener (``networking.v1alpha3.CaptureMode``)."""

    DEFAULT = "DEFAULT"
    IPTABLES = "IPTABLES"
    NONE = "NONE"


class ClientTLSMode(enum.Enum):
    """``ClientTLSSettings.TLSmode`` of a DestinationRule."""

    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


@dataclass(frozen=True, slots=True)
class TLSCertificate:
    """One entry of ``ServerTLSSettings.tlsCertificates``."""

    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""


@dataclass(frozen=True, slots=True)
class ServerTLSSettings:
    """TLS a server terminates (a Sidecar ingress listener's ``tls``)."""

    mode: TLSMode = TLSMode.PASSTHROUGH
    https_redirect: bool = False
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    subject_alt_names: tuple[str, ...] = ()
    min_protocol_version: TLSProtocol = TLSProtocol.TLS_AUTO
    max_protocol_version: TLSProtocol = TLSProtocol.TLS_AUTO
    cipher_suites: tuple[str, ...] = ()
    credential_name: str = ""
    credential_names: tuple[str, ...] = ()
    tls_certificates: tuple[TLSCertificate, ...] = ()
    verify_certificate_spki: tuple[str, ...] = ()
    verify_certificate_hash: tuple[str, ...] = ()
    ca_crl: str = ""
    insecure_skip_verify: bool | None = None  # a BoolValue: None when unset
    ca_cert_credential_name: str = ""
    ecdh_curves: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SidecarPort:
    """``SidecarPort``: ``target_port`` is deprecated and has no effect (0 when unset)."""

    number: int = 0
    protocol: str = ""
    name: str = ""
    target_port: int = 0


@dataclass(frozen=True, slots=True)
class IstioIngressListener:
    port: SidecarPort | None = None
    bind: str = ""
    capture_mode: CaptureMode = CaptureMode.DEFAULT
    default_endpoint: str = ""
    tls: ServerTLSSettings | None = None


@dataclass(frozen=True, slots=True)
class IstioEgressListener:
    port: SidecarPort | None = None
    bind: str = ""
    capture_mode: CaptureMode = CaptureMode.DEFAULT
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sidecar:
    """A Sidecar: which workloads it selects and its ingress and egress listeners.

    ``workload_selector`` is None when ``workloadSelector`` is absent (the Sidecar
    applies to the whole namespace) and ``{}`` when it is present without labels.
    A ``null`` entry of ``ingress`` or ``egress`` stays ``None``.
    ``outbound_traffic_policy`` is its mode (``REGISTRY_ONLY``/``ALLOW_ANY``), or
    None when the block is absent.
    """

    name: str
    namespace: str
    workload_selector: Mapping[str, str] | None = None
    ingress: tuple[IstioIngressListener | None, ...] = ()
    egress: tuple[IstioEgressListener | None, ...] = ()
    outbound_traffic_policy: str | None = None
    creation_timestamp: str | None = None

    @classmethod
    def from_resource(cls, resource: Resource) -> Sidecar:
        spec = resource.spec
        selector = _mapping(spec.get("workloadSelector"))
        ingress = tuple(
            None if item is None else _ingress_listener(item) for item in _list(spec, "ingress")
        )
        egress = tuple(
            None if item is None else _egress_listener(item) for item in _list(spec, "egress")
        )
        policy = spec.get("outboundTrafficPolicy")
        return cls(
            name=resource.name,
            namespace=_namespace(resource),
            workload_selector=None if selector is None else _labels(selector.get("labels")),
            ingress=ingress,
            egress=egress,
            outbound_traffic_policy=(
                None if policy is None else str(policy.get("mode") or "REGISTRY_ONLY")
            ),
            creation_timestamp=resource.creation_timestamp,
        )


@dataclass(frozen=True, slots=True)
class PeerAuthentication:
    """A PeerAuthentication, with what policy composition needs.

    ``selector`` is the ``matchLabels`` of ``selector``: None when ``selector`` is
    absent, ``{}`` when it has no labels (Istio treats both as a mesh or namespace
    policy). ``mtls_mode`` is None when ``mtls`` is absent and ``UNSET`` when its
    mode is. ``port_level_mtls`` maps container port numbers to modes.
    """

    name: str
    namespace: str
    selector: Mapping[str, str] | None = None
    mtls_mode: MTLSMode | None = None
    port_level_mtls: Mapping[int, MTLSMode] = field(default_factory=dict)
    creation_timestamp: str | None = None

    @classmethod
    def from_resource(cls, resource: Resource) -> PeerAuthentication:
        spec = resource.spec
        selector = _mapping(spec.get("selector"))
        mtls = _mapping(spec.get("mtls"))
        ports: dict[int, MTLSMode] = {}
        raw_ports = _mapping(spec.get("portLevelMtls")) or {}
        for key, value in raw_ports.items():
            number = parse_port_key(key)
            if number is None:
                raise ConfigError(
                    f'portLevelMtls key "{key}" is not a port number',
                    location=resource.location_of(("spec", "portLevelMtls", key)),
                    resource=resource.ref,
                    field=f"spec.portLevelMtls.{key}",
                )
            ports[number] = _enum(MTLSMode, (_mapping(value) or {}).get("mode"))
        return cls(
            name=resource.name,
            namespace=_namespace(resource),
            selector=None if selector is None else _labels(selector.get("matchLabels")),
            mtls_mode=None if mtls is None else _enum(MTLSMode, mtls.get("mode")),
            port_level_mtls=dict(sorted(ports.items())),
            creation_timestamp=resource.creation_timestamp,
        )


@dataclass(frozen=True, slots=True)
class ClientTLSSettings:
    """TLS a client originates (a DestinationRule's ``trafficPolicy.tls``)."""

    mode: ClientTLSMode = ClientTLSMode.DISABLE
    client_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    credential_name: str = ""
    subject_alt_names: tuple[str, ...] = ()
    sni: str = ""
    insecure_skip_verify: bool | None = None
    ca_crl: str = ""


@dataclass(frozen=True, slots=True)
class DestinationRule:
    """A DestinationRule's host, its client TLS settings and where it applies.

    ``tls`` is ``trafficPolicy.tls``; ``port_level_tls`` maps the port numbers of
    ``trafficPolicy.portLevelSettings`` that carry a ``tls`` block to it.
    ``workload_selector`` is ``workloadSelector.matchLabels`` (None when absent).
    """

    name: str
    namespace: str
    host: str = ""
    tls: ClientTLSSettings | None = None
    port_level_tls: Mapping[int, ClientTLSSettings] = field(default_factory=dict)
    workload_selector: Mapping[str, str] | None = None
    export_to: tuple[str, ...] = ()
    creation_timestamp: str | None = None

    @classmethod
    def from_resource(cls, resource: Resource) -> DestinationRule:
        spec = resource.spec
        policy = _mapping(spec.get("trafficPolicy")) or {}
        tls = _mapping(policy.get("tls"))
        port_level: dict[int, ClientTLSSettings] = {}
        for item in _list(policy, "portLevelSettings"):
            setting = _mapping(item) or {}
            port_tls = _mapping(setting.get("tls"))
            port = _mapping(setting.get("port"))
            if port_tls is not None and port is not None:
                port_level[_int(port.get("number"))] = client_tls_settings(port_tls)
        selector = _mapping(spec.get("workloadSelector"))
        return cls(
            name=resource.name,
            namespace=_namespace(resource),
            host=_str(spec.get("host")),
            tls=None if tls is None else client_tls_settings(tls),
            port_level_tls=dict(sorted(port_level.items())),
            workload_selector=None if selector is None else _labels(selector.get("matchLabels")),
            export_to=_strings(spec.get("exportTo")),
            creation_timestamp=resource.creation_timestamp,
        )


def parse_port_key(key: object) -> int | None:
    """A map key that names a port (``9080`` or ``"9080"``) as an int, or None."""
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    text = str(key).strip()
    if text.isdigit():
        return int(text)
    return None


# --- reading a checked body -------------------------------------------------------------

_E = TypeVar("_E", bound=enum.Enum)


def _namespace(resource: Resource) -> str:
    return resource.namespace or "default"


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _list(parent: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = parent.get(key)
    return value if isinstance(value, list) else ()


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _bool(value: Any) -> bool:
    return value is True


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(_str(item) for item in value)


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): _str(v) for k, v in sorted(value.items())}


def _enum(kind: type[_E], value: Any) -> _E:
    members = list(kind)
    if value is None:
        return members[0]
    return kind(value)


def _port(value: Any) -> SidecarPort | None:
    port = _mapping(value)
    if port is None:
        return None
    return SidecarPort(
        number=_int(port.get("number")),
        protocol=_str(port.get("protocol")),
        name=_str(port.get("name")),
        target_port=_int(port.get("targetPort")),
    )


def _ingress_listener(item: Mapping[str, Any]) -> IstioIngressListener:
    tls = _mapping(item.get("tls"))
    return IstioIngressListener(
        port=_port(item.get("port")),
        bind=_str(item.get("bind")),
        capture_mode=_enum(CaptureMode, item.get("captureMode")),
        default_endpoint=_str(item.get("defaultEndpoint")),
        tls=None if tls is None else server_tls_settings(tls),
    )


def _egress_listener(item: Mapping[str, Any]) -> IstioEgressListener:
    return IstioEgressListener(
        port=_port(item.get("port")),
        bind=_str(item.get("bind")),
        capture_mode=_enum(CaptureMode, item.get("captureMode")),
        hosts=_strings(item.get("hosts")),
    )


def server_tls_settings(tls: Mapping[str, Any]) -> ServerTLSSettings:
    """A ``ServerTLSSettings`` block of a checked body as its typed value."""
    certificates = tuple(
        TLSCertificate(
            server_certificate=_str(cert.get("serverCertificate")),
            private_key=_str(cert.get("privateKey")),
            ca_certificates=_str(cert.get("caCertificates")),
        )
        for cert in (_mapping(item) or {} for item in _list(tls, "tlsCertificates"))
    )
    skip = tls.get("insecureSkipVerify")
    return ServerTLSSettings(
        mode=_enum(TLSMode, tls.get("mode")),
        https_redirect=_bool(tls.get("httpsRedirect")),
        server_certificate=_str(tls.get("serverCertificate")),
        private_key=_str(tls.get("privateKey")),
        ca_certificates=_str(tls.get("caCertificates")),
        subject_alt_names=_strings(tls.get("subjectAltNames")),
        min_protocol_version=_enum(TLSProtocol, tls.get("minProtocolVersion")),
        max_protocol_version=_enum(TLSProtocol, tls.get("maxProtocolVersion")),
        cipher_suites=_strings(tls.get("cipherSuites")),
        credential_name=_str(tls.get("credentialName")),
        credential_names=_strings(tls.get("credentialNames")),
        tls_certificates=certificates,
        verify_certificate_spki=_strings(tls.get("verifyCertificateSpki")),
        verify_certificate_hash=_strings(tls.get("verifyCertificateHash")),
        ca_crl=_str(tls.get("caCrl")),
        insecure_skip_verify=skip if isinstance(skip, bool) else None,
        ca_cert_credential_name=_str(tls.get("caCertCredentialName")),
        ecdh_curves=_strings(tls.get("ecdhCurves")),
    )


def client_tls_settings(tls: Mapping[str, Any]) -> ClientTLSSettings:
    """A ``ClientTLSSettings`` block of a checked body as its typed value."""
    skip = tls.get("insecureSkipVerify")
    return ClientTLSSettings(
        mode=_enum(ClientTLSMode, tls.get("mode")),
        client_certificate=_str(tls.get("clientCertificate")),
        private_key=_str(tls.get("privateKey")),
        ca_certificates=_str(tls.get("caCertificates")),
        credential_name=_str(tls.get("credentialName")),
        subject_alt_names=_strings(tls.get("subjectAltNames")),
        sni=_str(tls.get("sni")),
        insecure_skip_verify=skip if isinstance(skip, bool) else None,
        ca_crl=_str(tls.get("caCrl")),
    )
