"""What ``istioctl proxy-config`` prints, from a sidecar's admin answers.

Theory of operation. The sidecar's admin API answers ``/config_dump`` with Envoy's
``ConfigDump`` as JSON (proto field names, snake_case: ``dynamic_active_secrets``),
one entry of ``configs`` per type (``…SecretsConfigDump``, ``…ListenersConfigDump`` …),
and ``/clusters?format=json`` with the clusters' hosts and their health.
``parse_json`` reads either; the functions below pick what each sub-command shows:

- ``secret``: one row per dynamic secret, warming ones first (``WARMING``), then active
  ones (``ACTIVE``, or ``UNINITIALIZED`` while ``version_info`` says so); the first
  certificate of the chain (or of the trusted CA) gives TYPE (``CA`` when its basic
  constraints say CA:TRUE, else ``Cert Chain``), VALID CERT (``now`` within its
  validity), the serial in decimal and the validity bounds in RFC 3339 UTC. The
  table is Go's tabwriter with five spaces of padding. ``-o json`` prints the
  ``SecretsConfigDump`` as istioctl does (proto3 JSON, lowerCamelCase, four-space
  indent) with every private key replaced by ``[redacted]``.
- ``listener``, ``cluster``, ``route``, ``endpoint``: istioctl's summary tables
  (``ADDRESSES PORT MATCH DESTINATION``; ``SERVICE FQDN PORT SUBSET DIRECTION TYPE
  DESTINATION RULE``; ``NAME VHOST NAME DOMAINS MATCH VIRTUAL SERVICE``;
  ``ENDPOINT STATUS OUTLIER CHECK CLUSTER``), or the resources as JSON/YAML.

Rows keep the order the proxy holds them in where istioctl keeps it (secrets), and
istioctl's sort otherwise. Pure: the clock is passed in.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from meshlet.errors import MeshletError
from meshlet.istioctl.tabwriter import tabwrite
from meshlet.kubectl.encode import to_yaml

__all__ = [
    "NO_SECRETS",
    "OutputFormat",
    "ProxyConfigError",
    "SecretRow",
    "camel_case",
    "cluster_rows",
    "config_of",
    "endpoint_rows",
    "listener_rows",
    "parse_json",
    "redact_private_keys",
    "render_clusters",
    "render_endpoints",
    "render_json",
    "render_listeners",
    "render_routes",
    "render_secrets",
    "resources_of",
    "route_rows",
    "secret_rows",
    "secrets_dump_json",
]

NO_SECRETS = "No active or warming secrets found."
REDACTED = base64.b64encode(b"[redacted]").decode("ascii")

_TYPE_PREFIX = "type.googleapis.com/"
SECRETS_DUMP = "envoy.admin.v3.SecretsConfigDump"
LISTENERS_DUMP = "envoy.admin.v3.ListenersConfigDump"
CLUSTERS_DUMP = "envoy.admin.v3.ClustersConfigDump"
ROUTES_DUMP = "envoy.admin.v3.RoutesConfigDump"


class ProxyConfigError(MeshletError):
    """An admin answer that is not what Envoy's admin API gives."""


class OutputFormat(enum.Enum):
    SHORT = "short"
    JSON = "json"
    YAML = "yaml"


# --- reading -----------------------------------------------------------------------------


def parse_json(body: bytes, what: str = "config dump") -> dict[str, Any]:
    """The admin API's JSON answer as a dict."""
    try:
        value: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProxyConfigError(f"error unmarshalling {what} response from Envoy: {exc}") from None
    if not isinstance(value, dict):
        raise ProxyConfigError(f"error unmarshalling {what} response from Envoy: not an object")
    return value


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` under its proto name or its JSON (lowerCamelCase) name."""
    if not isinstance(obj, Mapping):
        return None
    if name in obj:
        return obj[name]
    return obj.get(_camel(name))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def config_of(dump: Mapping[str, Any], type_name: str) -> dict[str, Any] | None:
    """The entry of ``configs`` whose ``@type`` is ``type_name`` (None when absent)."""
    for config in _list(dump.get("configs")):
        if isinstance(config, dict) and config.get("@type") == _TYPE_PREFIX + type_name:
            return config
    return None


# --- secret --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretRow:
    """One row of ``proxy-config secret`` (the certificate fields empty without data)."""

    name: str
    status: str
    type: str = ""
    valid: bool = False
    serial: str = ""
    not_after: str = ""
    not_before: str = ""
    trust_domain: str = ""


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _inline_bytes(source: Any) -> bytes:
    data = _field(source, "inline_bytes")
    if isinstance(data, str) and data:
        try:
            return base64.b64decode(data)
        except (binascii.Error, ValueError):
            return b""
    text = _field(source, "inline_string")
    return text.encode() if isinstance(text, str) else b""


def _first_certificate(data: bytes) -> x509.Certificate | None:
    match = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", data, re.DOTALL)
    if match is None:
        return None
    try:
        return x509.load_pem_x509_certificate(match.group(0))
    except ValueError:
        return None


def _trust_domain(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://"):
            return uri[len("spiffe://") :].split("/", 1)[0]
    return ""


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _secret_row(entry: Mapping[str, Any], status: str, now: datetime) -> SecretRow:
    name = str(_field(entry, "name") or "")
    secret = _field(entry, "secret")
    chain = _inline_bytes(_field(_field(secret, "tls_certificate"), "certificate_chain"))
    trusted = _inline_bytes(_field(_field(secret, "validation_context"), "trusted_ca"))
    data = chain or trusted
    if not data:
        return SecretRow(name, status)
    cert = _first_certificate(data)
    if cert is None:
        return SecretRow(name, status)
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    return SecretRow(
        name=name,
        status=status,
        type="CA" if _is_ca(cert) else "Cert Chain",
        valid=not_before < now < not_after,
        serial=str(cert.serial_number),
        not_after=_rfc3339(not_after),
        not_before=_rfc3339(not_before),
        trust_domain=_trust_domain(cert),
    )


def secret_rows(dump: Mapping[str, Any], now: datetime) -> list[SecretRow]:
    """The rows of ``proxy-config secret``: warming secrets, then active ones."""
    secrets = config_of(dump, SECRETS_DUMP) or {}
    rows = [
        _secret_row(entry, "WARMING", now)
        for entry in _list(_field(secrets, "dynamic_warming_secrets"))
    ]
    for entry in _list(_field(secrets, "dynamic_active_secrets")):
        status = "UNINITIALIZED" if _field(entry, "version_info") == "uninitialized" else "ACTIVE"
        rows.append(_secret_row(entry, status, now))
    return rows


def render_secrets(dump: Mapping[str, Any], now: datetime) -> str:
    """``proxy-config secret``'s table (istioctl's words when there is nothing)."""
    secrets = config_of(dump, SECRETS_DUMP) or {}
    if not _list(_field(secrets, "dynamic_active_secrets")) and not _list(
        _field(secrets, "dynamic_warming_secrets")
    ):
        return NO_SECRETS + "\n"
    rows = secret_rows(dump, now)
    if not rows:
        return "No secret items to show.\n"
    with_domain = all(row.trust_domain for row in rows)
    header = ["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER"]
    header += ["NOT AFTER", "NOT BEFORE"]
    if with_domain:
        header.append("TRUST DOMAIN")
    lines = ["\t".join(header)]
    for row in rows:
        cells = [row.name, row.type, row.status, "true" if row.valid else "false", row.serial]
        cells += [row.not_after, row.not_before]
        if with_domain:
            cells.append(row.trust_domain)
        lines.append("\t".join(cells))
    return tabwrite("\n".join(lines) + "\n", padding=5)


def redact_private_keys(value: Any) -> Any:
    """A copy of ``value`` with every ``private_key`` data source replaced by ``[redacted]``."""
    if isinstance(value, Mapping):
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if key in ("private_key", "privateKey") and isinstance(item, Mapping):
                copied[key] = {"inline_bytes" if key == "private_key" else "inlineBytes": REDACTED}
            else:
                copied[key] = redact_private_keys(item)
        return copied
    if isinstance(value, list):
        return [redact_private_keys(item) for item in value]
    return value


def secrets_dump_json(dump: Mapping[str, Any]) -> Any:
    """The ``SecretsConfigDump`` as istioctl prints it (lowerCamelCase, keys redacted)."""
    secrets = dict(config_of(dump, SECRETS_DUMP) or {"@type": _TYPE_PREFIX + SECRETS_DUMP})
    secrets.pop("@type", None)
    return camel_case(redact_private_keys(secrets), SECRETS_DUMP)


# --- proto3 JSON -----------------------------------------------------------------------------


def _load_types() -> None:
    """Register the Envoy messages that config dumps carry inside ``Any``."""
    import envoy.admin.v3.config_dump_pb2
    import envoy.config.cluster.v3.cluster_pb2
    import envoy.config.endpoint.v3.endpoint_pb2
    import envoy.config.listener.v3.listener_pb2
    import envoy.config.route.v3.route_pb2
    import envoy.extensions.filters.http.router.v3.router_pb2
    import envoy.extensions.filters.listener.original_dst.v3.original_dst_pb2
    import envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2
    import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2
    import envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2
    import envoy.extensions.transport_sockets.raw_buffer.v3.raw_buffer_pb2
    import envoy.extensions.transport_sockets.tls.v3.secret_pb2
    import envoy.extensions.transport_sockets.tls.v3.tls_pb2  # noqa: F401


def _generic_camel(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            (key if key.startswith("@") else _camel(str(key))): _generic_camel(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_generic_camel(item) for item in value]
    return value


def camel_case(value: Mapping[str, Any], type_name: str) -> Any:
    """``value`` (Envoy's JSON of a ``type_name`` message) in proto3 JSON form, as Go's
    protojson writes it: lowerCamelCase names, fields in field-number order.

    A message that the installed Envoy protos cannot read (an extension they lack)
    is converted name by name instead.
    """
    try:
        from google.protobuf import json_format, symbol_database

        _load_types()
        message_class = symbol_database.Default().GetSymbol(type_name)
        message = json_format.ParseDict(dict(value), message_class())
        return json_format.MessageToDict(message, preserving_proto_field_name=False)
    except Exception:  # an unknown type or field: keep the data, rename the keys
        return _generic_camel(value)


def render_json(value: Any, output: OutputFormat) -> str:
    """``value`` as istioctl prints it for ``-o json`` (four spaces) or ``-o yaml``."""
    if output is OutputFormat.YAML:
        return to_yaml(value)
    return json.dumps(value, indent=4, ensure_ascii=False) + "\n"


# --- listeners ------------------------------------------------------------------------------


def resources_of(dump: Mapping[str, Any], type_name: str, key: str) -> list[dict[str, Any]]:
    """The resources of one dump type: static ones and the active state of dynamic ones.

    ``key``: ``listener``, ``cluster`` or ``route_config``.
    """
    config = config_of(dump, type_name) or {}
    found: list[dict[str, Any]] = []
    for field in (f"dynamic_{key}s", f"dynamic_active_{key}s", f"static_{key}s"):
        for entry in _list(_field(config, field)):
            item = _field(entry, key)
            if item is None:
                item = _field(_field(entry, "active_state"), key)
            if isinstance(item, dict):
                found.append(item)
    return found


def _socket_address(address: Any) -> tuple[str, int]:
    socket = _field(address, "socket_address")
    port = _field(socket, "port_value")
    return str(_field(socket, "address") or ""), int(port) if isinstance(port, int) else 0


_PROTOCOL_NAMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "App: HTTP TLS",
        ("http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2"),
    ),
    ("App: Istio HTTP Plain", ("istio", "istio-http/1.0", "istio-http/1.1", "istio-h2")),
    ("App: TCP TLS", ("istio-peer-exchange", "istio")),
    ("App: HTTP", ("http/1.0", "http/1.1", "h2c")),
)

_HCM = "envoy.filters.network.http_connection_manager"
_TCP = "envoy.filters.network.tcp_proxy"


def _describe_match(match: Any) -> str:
    parts: list[str] = []
    names = [str(n) for n in _list(_field(match, "server_names"))]
    if names:
        parts.append(f"SNI: {','.join(names)}")
    transport = _field(match, "transport_protocol")
    if transport:
        parts.append(f"Trans: {transport}")
    protocols = tuple(str(p) for p in _list(_field(match, "application_protocols")))
    if protocols:
        named = next((label for label, known in _PROTOCOL_NAMES if known == protocols), None)
        parts.append(named or f"App: {','.join(protocols)}")
    port = _field(match, "destination_port")
    port_text = f":{port}" if isinstance(port, int) else ""
    ranges = _list(_field(match, "prefix_ranges"))
    if ranges:
        prefixes = ",".join(
            f"{_field(r, 'address_prefix')}/{_field(r, 'prefix_len') or 0}" for r in ranges
        )
        parts.append(f"Addr: {prefixes}{port_text}")
    elif port_text:
        parts.append(f"Addr: *{port_text}")
    return "; ".join(parts) or "ALL"


def _cluster_text(cluster: str) -> str:
    return cluster if "Cluster" in cluster else f"Cluster: {cluster}"


def _route_match_text(match: Any) -> str:
    conditions: list[str] = []
    prefix = _field(match, "prefix")
    if prefix:
        conditions.append(f"{prefix}*")
    path = _field(match, "path")
    if path:
        conditions.append(str(path))
    regex = _field(_field(match, "safe_regex"), "regex")
    if regex:
        conditions.append(f"regex {regex}")
    return " ".join(conditions)


def _inline_route_text(route_config: Any) -> str:
    hosts = _list(_field(route_config, "virtual_hosts"))
    if len(hosts) == 1 and _list(_field(hosts[0], "domains")) == ["*"]:
        routes = _list(_field(hosts[0], "routes"))
        if len(routes) == 1 and _field(_field(routes[0], "match"), "prefix") == "/":
            cluster = _field(_field(routes[0], "route"), "cluster")
            if isinstance(cluster, str) and cluster:
                return _cluster_text(cluster)
    described: list[str] = []
    for host in hosts:
        domains = [str(d) for d in _list(_field(host, "domains"))]
        matched = ", ".join(
            _route_match_text(_field(r, "match")) for r in _list(_field(host, "routes"))
        )
        described.append(matched if domains == ["*"] else f"{'/'.join(domains)} {matched}")
    return f"Inline Route: {'; '.join(described)}"


def _destination(filters: Sequence[Any]) -> str:
    for item in filters:
        name = _field(item, "name")
        config = _field(item, "typed_config")
        if name == _HCM:
            inline = _field(config, "route_config")
            if isinstance(inline, Mapping):
                return _inline_route_text(inline)
            rds = _field(_field(config, "rds"), "route_config_name")
            return f"Route: {rds}" if rds else "HTTP"
        if name == _TCP:
            cluster = str(_field(config, "cluster") or "")
            if "BlackHoleCluster" not in cluster:
                return _cluster_text(cluster)
    return "Non-HTTP/Non-TCP"


def listener_rows(dump: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(ADDRESSES, PORT, MATCH, DESTINATION)`` for every filter chain of every listener."""
    listeners = resources_of(dump, LISTENERS_DUMP, "listener")
    keyed = []
    for listener in listeners:
        address, port = _socket_address(_field(listener, "address"))
        extra = [
            _socket_address(_field(a, "address"))[0]
            for a in _list(_field(listener, "additional_addresses"))
        ]
        addresses = ",".join([address, *extra])
        keyed.append((port, addresses, listener))
    keyed.sort(key=lambda item: (item[0], item[1]))
    rows: list[tuple[str, str, str, str]] = []
    for port, addresses, listener in keyed:
        chains = [c for c in _list(_field(listener, "filter_chains")) if isinstance(c, Mapping)]
        default = _field(listener, "default_filter_chain")
        if isinstance(default, Mapping):
            chains.append(default)
        matches = [
            (
                _describe_match(_field(c, "filter_chain_match")),
                _destination(_list(_field(c, "filters"))),
            )
            for c in chains
        ]
        matches.sort(key=lambda m: m[1], reverse=True)
        rows.extend((addresses, str(port), match, destination) for match, destination in matches)
    return rows


def render_listeners(dump: Mapping[str, Any]) -> str:
    lines = ["ADDRESSES\tPORT\tMATCH\tDESTINATION"]
    lines += ["\t".join(row) for row in listener_rows(dump)]
    return tabwrite("\n".join(lines) + "\n", padding=1)


# --- clusters -------------------------------------------------------------------------------


def _istio_config_name(metadata: Any) -> str:
    """``name.namespace`` of the Istio resource behind a cluster or route (``-`` if none)."""
    istio = _field(_field(metadata, "filter_metadata"), "istio")
    config = _field(istio, "config")
    if isinstance(config, str) and config:
        match = re.search(r"/namespaces/([^/]+)/[^/]+/([^/]+)$", config)
        if match:
            return f"{match.group(2)}.{match.group(1)}"
    return "-"


def cluster_rows(dump: Mapping[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """``(SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE)`` per cluster."""
    rows = []
    for cluster in resources_of(dump, CLUSTERS_DUMP, "cluster"):
        name = str(_field(cluster, "name") or "")
        parts = name.split("|")
        if len(parts) == 4:
            direction, port, subset, fqdn = parts
            subset = subset or "-"
        else:
            direction, port, subset, fqdn = "-", "-", "-", name
        kind = _field(cluster, "type")
        if not kind:
            kind = "EDS" if _field(cluster, "eds_cluster_config") is not None else "STATIC"
        rule = _istio_config_name(_field(cluster, "metadata"))
        rows.append((fqdn, port, subset, direction, str(kind), "" if rule == "-" else rule))
    rows.sort(key=lambda r: (r[0], r[1].zfill(5), r[2], r[3]))
    return rows


def render_clusters(dump: Mapping[str, Any]) -> str:
    lines = ["SERVICE FQDN\tPORT\tSUBSET\tDIRECTION\tTYPE\tDESTINATION RULE"]
    lines += ["\t".join(row) for row in cluster_rows(dump)]
    return tabwrite("\n".join(lines) + "\n", padding=5)


# --- routes ---------------------------------------------------------------------------------


def _domains_text(domains: Sequence[str]) -> str:
    if not domains:
        return ""
    if len(domains) == 1:
        return domains[0]
    return f"{domains[0]} + {len(domains) - 1} more..."


def route_rows(dump: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """``(NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE)`` per route of every vhost."""
    configs = resources_of(dump, ROUTES_DUMP, "route_config")
    configs.sort(key=lambda c: str(_field(c, "name") or ""))
    rows = []
    for config in configs:
        name = str(_field(config, "name") or "")
        for host in _list(_field(config, "virtual_hosts")):
            domains = [str(d) for d in _list(_field(host, "domains"))]
            for route in _list(_field(host, "routes")):
                service = _istio_config_name(_field(route, "metadata"))
                rows.append(
                    (
                        name,
                        str(_field(host, "name") or ""),
                        _domains_text(domains),
                        _route_match_text(_field(route, "match")),
                        "" if service == "-" else service,
                    )
                )
    return rows


def render_routes(dump: Mapping[str, Any]) -> str:
    lines = ["NAME\tVHOST NAME\tDOMAINS\tMATCH\tVIRTUAL SERVICE"]
    lines += ["\t".join(row) for row in route_rows(dump)]
    return tabwrite("\n".join(lines) + "\n", padding=5)


# --- endpoints (``/clusters?format=json``) ---------------------------------------------------


def endpoint_rows(clusters: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER)`` per host of every cluster."""
    rows = []
    for cluster in _list(_field(clusters, "cluster_statuses")):
        name = str(_field(cluster, "name") or "")
        for host in _list(_field(cluster, "host_statuses")):
            address, port = _socket_address(_field(host, "address"))
            pipe = _field(_field(host, "address"), "pipe")
            endpoint = f"unix://{_field(pipe, 'path')}" if pipe else f"{address}:{port}"
            health = _field(host, "health_status")
            status = "HEALTHY"
            if _field(health, "failed_active_health_check"):
                status = "UNHEALTHY"
            elif _field(health, "eds_health_status"):
                status = str(_field(health, "eds_health_status"))
            outlier = "FAILED" if _field(health, "failed_outlier_check") else "OK"
            rows.append((endpoint, status, outlier, name))
    rows.sort(key=lambda r: (r[3], r[0]))
    return rows


def render_endpoints(clusters: Mapping[str, Any]) -> str:
    lines = ["ENDPOINT\tSTATUS\tOUTLIER CHECK\tCLUSTER"]
    lines += ["\t".join(row) for row in endpoint_rows(clusters)]
    return tabwrite("\n".join(lines) + "\n", padding=5)
