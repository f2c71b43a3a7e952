"""Istio's ``ValidateSidecar``, check for check, and the Sidecar CRD's CEL rules.

Istio returns early in two places, and so does this: workload-selector errors
are reported alone, and an empty configuration is reported alone (Istio drops the
warnings it had collected by then).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meshlet.resources.istio import (
    IstioEgressListener,
    IstioIngressListener,
    Sidecar,
    SidecarPort,
    TLSMode,
)
from meshlet.resources.objects import Resource
from meshlet.resources.validation._go import (
    atoi,
    go_quote,
    is_dns1123_label,
    is_valid_ip,
    split_host_port,
    validate_dns1123_labels,
    validate_wildcard_domain,
)
from meshlet.resources.validation.connection_pool import validate_connection_pool
from meshlet.resources.validation.findings import Finding, Level, error, warning
from meshlet.resources.validation.protocol import is_http, is_tls, parse_protocol
from meshlet.resources.validation.selector import (
    NO_LABELS_WARNING,
    selector_errors,
    sidecar_labels_cel,
)
from meshlet.resources.validation.tls import server_tls_cel, validate_tls_options
from meshlet.resources.yamlsource import Path

__all__ = [
    "validate_port",
    "validate_sidecar",
    "validate_unix_address",
]

UNIX_PREFIX = "unix://"
_LOCAL_HOSTS = {"", "127.0.0.1", "0.0.0.0", "::1", "::"}
_SPEC: Path = ("spec",)


def validate_sidecar(resource: Resource) -> list[Finding]:
    spec = resource.spec
    sidecar = Sidecar.from_resource(resource)
    raw_selector = _mapping(spec.get("workloadSelector"))
    findings = sidecar_labels_cel(raw_selector, (*_SPEC, "workloadSelector"))
    for index, raw in enumerate(_list(spec.get("ingress"))):
        tls = _mapping(raw.get("tls")) if isinstance(raw, Mapping) else None
        if tls is not None:
            findings.extend(server_tls_cel(tls, (*_SPEC, "ingress", index, "tls")))

    if sidecar.workload_selector is not None:
        labels = (raw_selector or {}).get("labels") or {}
        errors = selector_errors(labels, (*_SPEC, "workloadSelector", "labels"))
        if errors:
            return findings + errors
        if not sidecar.workload_selector:
            findings.append(
                warning(
                    f"sidecar: {NO_LABELS_WARNING}, will be applied to all services in namespace",
                    (*_SPEC, "workloadSelector"),
                )
            )

    if (
        not sidecar.egress
        and not sidecar.ingress
        and spec.get("outboundTrafficPolicy") is None
        and spec.get("inboundConnectionPool") is None
    ):
        return [
            *(f for f in findings if f.level is Level.ERROR),
            error("sidecar: empty configuration provided", _SPEC),
        ]

    seen_ports: set[int] = set()
    for index, listener in enumerate(sidecar.ingress):
        raw = _list(spec.get("ingress"))[index]
        findings.extend(_ingress(listener, raw, (*_SPEC, "ingress", index), seen_ports))

    findings.extend(
        validate_connection_pool(
            _mapping(spec.get("inboundConnectionPool")), (*_SPEC, "inboundConnectionPool")
        )
    )
    findings.extend(_egress(sidecar, resource.namespace or "default"))
    findings.extend(_outbound_traffic_policy(_mapping(spec.get("outboundTrafficPolicy"))))
    return findings


def _ingress(
    listener: IstioIngressListener | None, raw: Any, path: Path, seen_ports: set[int]
) -> list[Finding]:
    if listener is None:
        return [error("sidecar: ingress may not be null", path)]
    if listener.port is None:
        return [error("sidecar: port is required for ingress listeners", path)]
    port = listener.port
    port_path = (*path, "port")
    findings: list[Finding] = []
    if port.target_port > 0:
        findings.append(error("targetPort has no impact on Sidecars", (*port_path, "targetPort")))
    findings.extend(_ingress_port_and_bind(port, listener.bind, path))
    if port.number in seen_ports:
        findings.append(
            error("sidecar: ports on IP bound listeners must be unique", (*port_path, "number"))
        )
    seen_ports.add(port.number)

    if listener.default_endpoint:
        findings.extend(_default_endpoint(listener.default_endpoint, (*path, "defaultEndpoint")))

    if listener.tls is not None:
        findings.extend(_ingress_tls(listener, (*path, "tls")))

    pool = _mapping(raw.get("connectionPool"))
    findings.extend(validate_connection_pool(pool, (*path, "connectionPool")))
    if pool is not None and pool.get("http") is not None and not is_http(port.protocol):
        findings.append(
            warning(
                f"sidecar: HTTP connection pool settings are configured for port {port.number} "
                f"({go_quote(port.name)}) but its protocol is not HTTP ({port.protocol}); "
                "only TCP settings will apply",
                (*path, "connectionPool", "http"),
            )
        )
    return findings


def _ingress_port_and_bind(port: SidecarPort, bind: str, path: Path) -> list[Finding]:
    """``validateSidecarIngressPortAndBind``."""
    port_path = (*path, "port")
    findings: list[Finding] = []
    if port.name and not is_dns1123_label(port.name):
        findings.append(error(f"invalid port name: {port.name}", (*port_path, "name")))
    findings.extend(_protocol(port.protocol, (*port_path, "protocol")))
    findings.extend(validate_port(port.number, (*port_path, "number")))
    if bind and not is_valid_ip(bind):
        findings.append(error(f"{bind} is not a valid IP", (*path, "bind")))
    return findings


def _protocol(protocol: str, path: Path) -> list[Finding]:
    """``ValidateProtocol``: an empty protocol means sniffing and is allowed."""
    if protocol and parse_protocol(protocol) is None:
        return [error(f"unsupported protocol: {protocol}", path)]
    return []


def validate_port(number: int, path: Path) -> list[Finding]:
    """``ValidatePort``."""
    if 1 <= number <= 65535:
        return []
    return [error(f"port number {number} must be in the range 1..65535", path)]


def validate_unix_address(address: str, path: Path) -> list[Finding]:
    """``ValidateUnixAddress`` on the part after ``unix://``."""
    if not address:
        return [error("unix address must not be empty", path)]
    if address.startswith("@"):
        return []  # an abstract socket
    if not address.startswith("/") or address.endswith("/"):
        return [error(f"{address} is not an absolute path to a file", path)]
    return []


def _default_endpoint(endpoint: str, path: Path) -> list[Finding]:
    if endpoint.startswith(UNIX_PREFIX):
        return validate_unix_address(endpoint.removeprefix(UNIX_PREFIX), path)
    findings: list[Finding] = []
    split = split_host_port(endpoint)
    if split.error is not None:
        findings.append(error(split.error, path))
    if split.host not in _LOCAL_HOSTS:
        findings.append(
            error(
                "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,"
                "[::1]:port,[::]:port,unix://filepath or unset",
                path,
            )
        )
    number = atoi(split.port)
    if number.error is not None:
        findings.append(
            error(
                f"sidecar: defaultEndpoint port ({split.port}) is not a number: {number.error}",
                path,
            )
        )
    else:
        findings.extend(validate_port(number.value, path))
    return findings


def _ingress_tls(listener: IstioIngressListener, path: Path) -> list[Finding]:
    tls = listener.tls
    assert tls is not None and listener.port is not None
    findings: list[Finding] = []
    if tls.subject_alt_names:
        findings.append(
            error(
                "sidecar: subjectAltNames is not supported in ingress tls",
                (*path, "subjectAltNames"),
            )
        )
    if tls.https_redirect:
        findings.append(error("sidecar: httpsRedirect is not supported", (*path, "httpsRedirect")))
    if tls.credential_name:
        findings.append(
            error("sidecar: credentialName is not currently supported", (*path, "credentialName"))
        )
    if tls.credential_names:
        findings.append(
            error(
                "sidecar: credentialNames is not currently supported",
                (*path, "credentialNames"),
            )
        )
    if tls.tls_certificates:
        findings.append(
            error(
                "sidecar: tls_certificates is not currently supported",
                (*path, "tlsCertificates"),
            )
        )
    if tls.mode in {TLSMode.ISTIO_MUTUAL, TLSMode.AUTO_PASSTHROUGH}:
        findings.append(
            error(
                f"configuration is invalid: cannot set mode to {tls.mode.value} "
                "in sidecar ingress tls",
                (*path, "mode"),
            )
        )
    if not is_tls(listener.port.protocol):
        findings.append(error("server cannot have TLS settings for non HTTPS/TLS ports", path))
    findings.extend(validate_tls_options(tls, path))
    return findings


# --- egress -------------------------------------------------------------------------------


def _egress(sidecar: Sidecar, namespace: str) -> list[Finding]:
    findings: list[Finding] = []
    ports: set[int] = set()
    sockets: set[str] = set()
    catch_all_found = False
    last = len(sidecar.egress) - 1
    for index, listener in enumerate(sidecar.egress):
        path = (*_SPEC, "egress", index)
        if listener is None:
            findings.append(error("egress listener may not be null", path))
            continue
        if listener.port is None:
            if catch_all_found:
                findings.append(
                    error("sidecar: egress can have only one listener with empty port", path)
                )
                continue
            if index == last:
                catch_all_found = True
            else:
                findings.append(
                    error(
                        "sidecar: the egress listener with empty port should be the last "
                        "listener in the list",
                        path,
                    )
                )
        else:
            port = listener.port
            if port.target_port > 0:
                findings.append(
                    error("targetPort has no impact on Sidecars", (*path, "port", "targetPort"))
                )
            findings.extend(_egress_port_bind_and_capture(listener, path))
            if port.number == 0:
                if listener.bind in sockets:
                    findings.append(
                        error(
                            "sidecar: unix domain socket values for listeners must be unique",
                            (*path, "bind"),
                        )
                    )
                sockets.add(listener.bind)
            else:
                if port.number in ports:
                    findings.append(
                        error(
                            "sidecar: ports on IP bound listeners must be unique",
                            (*path, "port", "number"),
                        )
                    )
                ports.add(port.number)
        findings.extend(_egress_hosts(listener.hosts, namespace, (*path, "hosts")))
    return findings


def _egress_port_bind_and_capture(listener: IstioEgressListener, path: Path) -> list[Finding]:
    """``validateSidecarEgressPortBindAndCaptureMode``."""
    port = listener.port
    assert port is not None
    bind = listener.bind
    findings: list[Finding] = []
    if port.name and not is_dns1123_label(port.name):
        findings.append(error(f"invalid port name: {port.name}", (*path, "port", "name")))
    findings.extend(_protocol(port.protocol, (*path, "port", "protocol")))
    if port.number == 0:
        if not bind.startswith(UNIX_PREFIX):
            findings.append(
                error(
                    "sidecar: ports with 0 value must have a unix domain socket bind address",
                    (*path, "bind"),
                )
            )
        else:
            findings.extend(validate_unix_address(bind.removeprefix(UNIX_PREFIX), (*path, "bind")))
        if listener.capture_mode.value not in {"DEFAULT", "NONE"}:
            findings.append(
                error(
                    "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
                    (*path, "captureMode"),
                )
            )
    else:
        findings.extend(validate_port(port.number, (*path, "port", "number")))
        if bind and not is_valid_ip(bind):
            findings.append(error(f"{bind} is not a valid IP", (*path, "bind")))
    return findings


def _egress_hosts(hosts: Sequence[str], namespace: str, path: Path) -> list[Finding]:
    if not hosts:
        return [error("sidecar: egress listener must contain at least one host", path)]
    findings: list[Finding] = []
    by_namespace: dict[str, set[str]] = {}
    for index, host in enumerate(hosts):
        where = (*path, index)
        ns, slash, name = host.partition("/")
        if slash:
            if ns == ".":
                ns = namespace
            names = by_namespace.setdefault(ns, set())
            duplicated = (name in names or "*" in names) if name != "*" else bool(names)
            if duplicated:
                findings.append(warning(f"duplicated egress host: {host}", where))
            names.add(name)
        findings.extend(error(message, where) for message in _namespace_slash_host(host))
    if "*" in by_namespace.get("*", set()) and len(by_namespace) != 1:
        findings.append(
            warning("`*/*` host select all resources, no other hosts can be added", path)
        )
    return findings


def _namespace_slash_host(host: str) -> list[str]:
    """``ValidateNamespaceSlashWildcardHostname`` for a Sidecar (not a Gateway)."""
    ns, slash, name = host.partition("/")
    if not slash:
        return ["host must be of form namespace/dnsName"]
    problems: list[str] = []
    if not ns or not name:
        problems.append("config namespace and dnsName in host entry cannot be empty")
    if ns not in {"*", ".", "~"} and not is_dns1123_label(ns):
        problems.append(f"invalid namespace value {go_quote(ns)} in sidecar")
    if name != "*" and "." not in name:
        problems.append("short names (non FQDN) are not allowed")
    domain_error = validate_wildcard_domain(name)
    if domain_error is not None:
        problems.append(domain_error)
        if not is_valid_ip(name):
            problems.append(domain_error)
    if "*" in name and len(name) != 1 and not name.startswith("*."):
        problems.append(f"partial wildcard {go_quote(name)} not allowed")
    return problems


def _outbound_traffic_policy(policy: Mapping[str, Any] | None) -> list[Finding]:
    """``validateSidecarOutboundTrafficPolicy``."""
    if policy is None or policy.get("egressProxy") is None:
        return []
    path = (*_SPEC, "outboundTrafficPolicy", "egressProxy")
    if (policy.get("mode") or "REGISTRY_ONLY") != "ALLOW_ANY":
        return [
            error(
                "sidecar: egress_proxy must be set only with ALLOW_ANY "
                "outbound_traffic_policy mode",
                path,
            )
        ]
    proxy: Mapping[str, Any] = policy["egressProxy"]
    findings: list[Finding] = []
    host = str(proxy.get("host") or "")
    fqdn_error = _validate_fqdn(host)
    if fqdn_error is not None:
        findings.append(error(fqdn_error, (*path, "host")))
    if proxy.get("port") is None:
        findings.append(error("sidecar: egress_proxy port must be non-nil", path))
    return findings


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def _validate_fqdn(host: str) -> str | None:
    """``ValidateFQDN``."""
    if len(host) > 255:
        return f"domain name {go_quote(host)} too long (max 255)"
    if not host:
        return "empty domain name not allowed"
    return validate_dns1123_labels(host)
