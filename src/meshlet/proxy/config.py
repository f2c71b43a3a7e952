"""The part of Envoy's v3 API the meshlet proxy serves, and the check that config stays in it.

Theory of operation
-------------------
An xDS resource is a tree of protobuf messages. The proxy knows how to serve a fixed
subset of that tree, written down here as data:

- ``SUPPORTED_FIELDS`` maps each message type the proxy understands to the fields of it
  that it honours. A field that is *set* (``ListFields()``) but not listed is config
  the proxy would silently ignore, so the resource is refused instead.
- ``SUPPORTED_ENUM_VALUES`` narrows some enum fields to the values implemented (a
  cluster may be STATIC, EDS or ORIGINAL_DST, not LOGICAL_DNS).
- ``typed_config`` fields are ``Any``: the type URLs allowed depend on where the
  ``Any`` sits (a listener filter, a network filter, an HTTP filter, a listener's or a
  cluster's transport socket), see ``SUPPORTED_TYPED_CONFIGS``. An allowed ``Any`` is
  unpacked and walked like any other message.
- Bytes the protobuf runtime does not know (fields from a newer Envoy) are refused too.

``validate_resources(type_url, resources)`` walks every resource of one discovery
response and returns one message per problem, each naming the resource and the field
path, e.g.::

    listener "virtualInbound": filter_chains[2].filters[0].typed_config: unsupported
    type envoy.extensions.filters.network.redis_proxy.v3.RedisProxy

A few rules Envoy itself enforces when it loads a resource are checked as well (a
listener's filter-chain matches through ``meshlet.envoy.filter_chain``, an HTTP
connection manager with exactly one route source and the router last, a STATIC cluster
with a load assignment, names present and unique). An empty list means the proxy can
serve the response; otherwise the xDS client NACKs it with these messages and keeps its
last good config. docs/envoy-api-subset.md lists the same subset for people.

Pure: messages in, strings out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import any_pb2, unknown_fields
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from meshlet.envoy.filter_chain import validate_filter_chains
from meshlet.errors import ErrorList, MeshletError

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "LISTENER_TYPE",
    "RESOURCE_KINDS",
    "ROUTE_TYPE",
    "SUPPORTED_ENUM_VALUES",
    "SUPPORTED_FIELDS",
    "SUPPORTED_TYPED_CONFIGS",
    "ResourceKind",
    "resource_name",
    "unpack_resources",
    "validate_resources",
]

_PREFIX = "type.googleapis.com/"
LISTENER_TYPE = _PREFIX + "envoy.config.listener.v3.Listener"
CLUSTER_TYPE = _PREFIX + "envoy.config.cluster.v3.Cluster"
ROUTE_TYPE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
ENDPOINT_TYPE = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """One xDS resource type: its message class, the word used in messages, its short name."""

    type_url: str
    message: type[Message]
    label: str
    short: str


RESOURCE_KINDS: Mapping[str, ResourceKind] = {
    LISTENER_TYPE: ResourceKind(LISTENER_TYPE, listener_pb2.Listener, "listener", "LDS"),
    CLUSTER_TYPE: ResourceKind(CLUSTER_TYPE, cluster_pb2.Cluster, "cluster", "CDS"),
    ROUTE_TYPE: ResourceKind(ROUTE_TYPE, route_pb2.RouteConfiguration, "route", "RDS"),
    ENDPOINT_TYPE: ResourceKind(
        ENDPOINT_TYPE, endpoint_pb2.ClusterLoadAssignment, "endpoints", "EDS"
    ),
}


def _fields(**by_type: tuple[str, ...]) -> dict[str, frozenset[str]]:
    return {name.replace("__", "."): frozenset(fields) for name, fields in by_type.items()}


_WRAPPERS = {
    "google.protobuf.BoolValue": frozenset({"value"}),
    "google.protobuf.UInt32Value": frozenset({"value"}),
    "google.protobuf.Duration": frozenset({"seconds", "nanos"}),
}

#: Message type → the fields of it the proxy honours.
SUPPORTED_FIELDS: Mapping[str, frozenset[str]] = {
    **_WRAPPERS,
    # Listeners.
    "envoy.config.listener.v3.Listener": frozenset(
        {
            "name",
            "address",
            "filter_chains",
            "default_filter_chain",
            "listener_filters",
            "listener_filters_timeout",
            "continue_on_listener_filters_timeout",
            "use_original_dst",
            "bind_to_port",
            "traffic_direction",
        }
    ),
    "envoy.config.core.v3.Address": frozenset({"socket_address", "pipe"}),
    "envoy.config.core.v3.SocketAddress": frozenset({"address", "port_value", "protocol"}),
    "envoy.config.core.v3.Pipe": frozenset({"path"}),
    "envoy.config.core.v3.CidrRange": frozenset({"address_prefix", "prefix_len"}),
    "envoy.config.listener.v3.ListenerFilter": frozenset({"name", "typed_config"}),
    "envoy.config.listener.v3.FilterChain": frozenset(
        {"name", "filter_chain_match", "filters", "transport_socket"}
    ),
    "envoy.config.listener.v3.FilterChainMatch": frozenset(
        {
            "destination_port",
            "prefix_ranges",
            "direct_source_prefix_ranges",
            "source_type",
            "source_prefix_ranges",
            "source_ports",
            "server_names",
            "transport_protocol",
            "application_protocols",
        }
    ),
    "envoy.config.listener.v3.Filter": frozenset({"name", "typed_config"}),
    # Listener filters: no options.
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector": frozenset(),
    "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector": frozenset(),
    "envoy.extensions.filters.listener.original_dst.v3.OriginalDst": frozenset(),
    # Network filters.
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy": frozenset(
        {"stat_prefix", "cluster", "idle_timeout"}
    ),
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": frozenset(
        {
            "stat_prefix",
            "codec_type",
            "rds",
            "route_config",
            "http_filters",
            "tracing",
            "server_name",
            "server_header_transformation",
            "use_remote_address",
            "generate_request_id",
            "normalize_path",
            "path_with_escaped_slashes_action",
            "stream_idle_timeout",
            "request_timeout",
            "upgrade_configs",
            "forward_client_cert_details",
            "set_current_client_cert_details",
            "http2_protocol_options",
        }
    ),
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing": (
        frozenset()
    ),
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig": frozenset(
        {"upgrade_type", "enabled"}
    ),
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails": frozenset(
        {"subject", "cert", "chain", "dns", "uri"}
    ),
    "envoy.extensions.filters.network.http_connection_manager.v3.Rds": frozenset(
        {"config_source", "route_config_name"}
    ),
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter": frozenset(
        {"name", "typed_config"}
    ),
    "envoy.config.core.v3.Http2ProtocolOptions": frozenset(
        {"max_concurrent_streams", "initial_stream_window_size", "initial_connection_window_size"}
    ),
    "envoy.extensions.filters.http.router.v3.Router": frozenset(),
    # Config sources: ADS for RDS/EDS, the pod agent's SDS for secrets.
    "envoy.config.core.v3.ConfigSource": frozenset(
        {"ads", "api_config_source", "initial_fetch_timeout", "resource_api_version"}
    ),
    "envoy.config.core.v3.AggregatedConfigSource": frozenset(),
    "envoy.config.core.v3.ApiConfigSource": frozenset(
        {"api_type", "transport_api_version", "grpc_services", "set_node_on_first_message_only"}
    ),
    "envoy.config.core.v3.GrpcService": frozenset({"envoy_grpc"}),
    "envoy.config.core.v3.GrpcService.EnvoyGrpc": frozenset({"cluster_name"}),
    # Routes.
    "envoy.config.route.v3.RouteConfiguration": frozenset(
        {"name", "virtual_hosts", "validate_clusters"}
    ),
    "envoy.config.route.v3.VirtualHost": frozenset(
        {"name", "domains", "routes", "include_request_attempt_count"}
    ),
    "envoy.config.route.v3.Route": frozenset(
        {"name", "match", "route", "direct_response", "decorator"}
    ),
    "envoy.config.route.v3.RouteMatch": frozenset({"prefix", "path"}),
    "envoy.config.route.v3.RouteAction": frozenset({"cluster", "timeout", "max_stream_duration"}),
    "envoy.config.route.v3.RouteAction.MaxStreamDuration": frozenset(
        {"max_stream_duration", "grpc_timeout_header_max"}
    ),
    "envoy.config.route.v3.DirectResponseAction": frozenset({"status", "body"}),
    "envoy.config.core.v3.DataSource": frozenset({"inline_string", "inline_bytes"}),
    "envoy.config.route.v3.Decorator": frozenset({"operation", "propagate"}),
    # Clusters and endpoints.
    "envoy.config.cluster.v3.Cluster": frozenset(
        {
            "name",
            "type",
            "connect_timeout",
            "lb_policy",
            "load_assignment",
            "eds_cluster_config",
            "transport_socket",
            "circuit_breakers",
            "upstream_bind_config",
        }
    ),
    "envoy.config.cluster.v3.Cluster.EdsClusterConfig": frozenset({"eds_config", "service_name"}),
    "envoy.config.cluster.v3.CircuitBreakers": frozenset({"thresholds"}),
    "envoy.config.cluster.v3.CircuitBreakers.Thresholds": frozenset(
        {
            "priority",
            "max_connections",
            "max_pending_requests",
            "max_requests",
            "max_retries",
            "track_remaining",
        }
    ),
    "envoy.config.core.v3.BindConfig": frozenset({"source_address"}),
    "envoy.config.endpoint.v3.ClusterLoadAssignment": frozenset({"cluster_name", "endpoints"}),
    "envoy.config.endpoint.v3.LocalityLbEndpoints": frozenset(
        {"lb_endpoints", "load_balancing_weight"}
    ),
    "envoy.config.endpoint.v3.LbEndpoint": frozenset({"endpoint", "load_balancing_weight"}),
    "envoy.config.endpoint.v3.Endpoint": frozenset({"address"}),
    # TLS.
    "envoy.config.core.v3.TransportSocket": frozenset({"name", "typed_config"}),
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext": frozenset(
        {"common_tls_context", "require_client_certificate"}
    ),
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext": frozenset(
        {"common_tls_context", "sni"}
    ),
    "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext": frozenset(
        {
            "tls_params",
            "alpn_protocols",
            "tls_certificate_sds_secret_configs",
            "validation_context_sds_secret_config",
            "combined_validation_context",
        }
    ),
    "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext": frozenset(
        {"default_validation_context", "validation_context_sds_secret_config"}
    ),
    "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext": frozenset(
        {"match_typed_subject_alt_names", "match_subject_alt_names"}
    ),
    "envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher": frozenset(
        {"san_type", "matcher"}
    ),
    "envoy.type.matcher.v3.StringMatcher": frozenset({"exact", "prefix", "suffix", "ignore_case"}),
    "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig": frozenset({"name", "sds_config"}),
    "envoy.extensions.transport_sockets.tls.v3.TlsParameters": frozenset(
        {
            "tls_minimum_protocol_version",
            "tls_maximum_protocol_version",
            "cipher_suites",
            "ecdh_curves",
        }
    ),
}

_C = cluster_pb2.Cluster
_HCM = hcm_pb2.HttpConnectionManager

#: (message type, enum field) → the value names the proxy implements.
SUPPORTED_ENUM_VALUES: Mapping[tuple[str, str], frozenset[str]] = {
    ("envoy.config.cluster.v3.Cluster", "type"): frozenset({"STATIC", "EDS", "ORIGINAL_DST"}),
    ("envoy.config.cluster.v3.Cluster", "lb_policy"): frozenset(
        {"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "CLUSTER_PROVIDED"}
    ),
    ("envoy.config.core.v3.SocketAddress", "protocol"): frozenset({"TCP"}),
    ("envoy.config.cluster.v3.CircuitBreakers.Thresholds", "priority"): frozenset({"DEFAULT"}),
    ("envoy.config.core.v3.ApiConfigSource", "api_type"): frozenset({"GRPC"}),
    (_HCM.DESCRIPTOR.full_name, "codec_type"): frozenset({"AUTO", "HTTP1", "HTTP2"}),
    (_HCM.DESCRIPTOR.full_name, "forward_client_cert_details"): frozenset(
        {"SANITIZE", "FORWARD_ONLY", "APPEND_FORWARD", "SANITIZE_SET", "ALWAYS_FORWARD_ONLY"}
    ),
    (_HCM.DESCRIPTOR.full_name, "server_header_transformation"): frozenset(
        {"OVERWRITE", "APPEND_IF_ABSENT", "PASS_THROUGH"}
    ),
    (_HCM.DESCRIPTOR.full_name, "path_with_escaped_slashes_action"): frozenset(
        {"IMPLEMENTATION_SPECIFIC_DEFAULT", "KEEP_UNCHANGED"}
    ),
}


def _type_url(message: type[Message]) -> str:
    return _PREFIX + str(message.DESCRIPTOR.full_name)


_LISTENER_FILTERS = frozenset(
    _type_url(m)
    for m in (
        tls_inspector_pb2.TlsInspector,
        http_inspector_pb2.HttpInspector,
        original_dst_pb2.OriginalDst,
    )
)
_NETWORK_FILTERS = frozenset(_type_url(m) for m in (_HCM, tcp_proxy_pb2.TcpProxy))
_HTTP_FILTERS = frozenset({_type_url(router_pb2.Router)})
_DOWNSTREAM_TLS = frozenset({_type_url(tls_pb2.DownstreamTlsContext)})
_UPSTREAM_TLS = frozenset({_type_url(tls_pb2.UpstreamTlsContext)})

#: Where an ``Any`` sits (the message holding it, and its field) → the type URLs allowed.
#: A transport socket's ``typed_config`` depends on who holds the socket: a listener's
#: filter chain (downstream TLS) or a cluster (upstream TLS).
SUPPORTED_TYPED_CONFIGS: Mapping[tuple[str, str], frozenset[str]] = {
    ("envoy.config.listener.v3.ListenerFilter", "typed_config"): _LISTENER_FILTERS,
    ("envoy.config.listener.v3.Filter", "typed_config"): _NETWORK_FILTERS,
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
        "typed_config",
    ): _HTTP_FILTERS,
    ("envoy.config.listener.v3.FilterChain", "transport_socket"): _DOWNSTREAM_TLS,
    ("envoy.config.cluster.v3.Cluster", "transport_socket"): _UPSTREAM_TLS,
}

_TRANSPORT_SOCKET = "envoy.config.core.v3.TransportSocket"


def _short(type_url: str) -> str:
    return type_url.rsplit("/", 1)[-1]


class _Walker:
    """Collects problems while walking one resource."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def walk(self, message: Message, path: str, any_types: frozenset[str] | None = None) -> None:
        descriptor: Descriptor = message.DESCRIPTOR
        name = descriptor.full_name
        allowed = SUPPORTED_FIELDS.get(name)
        unknown = unknown_fields.UnknownFieldSet(message)
        for item in unknown:
            self.add(path, f"unknown field number {item.field_number} in {name}")
        if name == "google.protobuf.Any":
            self._walk_any(message, path, any_types)
            return
        if allowed is None:
            self.add(path, f"unsupported message type {name}")
            return
        for field, value in message.ListFields():
            field_path = f"{path}.{field.name}" if path else field.name
            if field.name not in allowed:
                self.add(field_path, "unsupported field")
                continue
            self._walk_field(message, field, value, field_path, any_types)

    def _walk_field(
        self,
        parent: Message,
        field: FieldDescriptor,
        value: object,
        path: str,
        inherited: frozenset[str] | None,
    ) -> None:
        owner = parent.DESCRIPTOR.full_name
        if field.enum_type is not None:
            values = SUPPORTED_ENUM_VALUES.get((owner, field.name))
            if values is not None:
                numbers = cast("list[int]", list(value) if _is_repeated(field) else [value])  # type: ignore[call-overload]
                for number in numbers:
                    label = field.enum_type.values_by_number.get(number)
                    value_name = label.name if label is not None else str(number)
                    if value_name not in values:
                        self.add(path, f"unsupported value {value_name}")
            return
        if field.message_type is None:
            return
        any_types = SUPPORTED_TYPED_CONFIGS.get((owner, field.name))
        if field.message_type.full_name == _TRANSPORT_SOCKET:
            # The transport socket's own typed_config takes the holder's allowed types.
            inherited = any_types
            any_types = None
        elif owner == _TRANSPORT_SOCKET:
            any_types = inherited
        if _is_repeated(field):
            for index, item in enumerate(cast("Iterable[Message]", value)):
                self.walk(item, f"{path}[{index}]", any_types or inherited)
        else:
            assert isinstance(value, Message)
            self.walk(value, path, any_types or inherited)

    def _walk_any(self, packed: Message, path: str, allowed: frozenset[str] | None) -> None:
        assert isinstance(packed, any_pb2.Any)
        if allowed is None or packed.type_url not in allowed:
            self.add(path, f"unsupported type {_short(packed.type_url) or '(none)'}")
            return
        inner = _MESSAGES[packed.type_url]()
        try:
            inner.ParseFromString(packed.value)
        except DecodeError:
            self.add(path, f"cannot decode {_short(packed.type_url)}")
            return
        self.walk(inner, path)


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


_MESSAGES: dict[str, type[Message]] = {
    _type_url(m): m
    for m in (
        tls_inspector_pb2.TlsInspector,
        http_inspector_pb2.HttpInspector,
        original_dst_pb2.OriginalDst,
        _HCM,
        tcp_proxy_pb2.TcpProxy,
        router_pb2.Router,
        tls_pb2.DownstreamTlsContext,
        tls_pb2.UpstreamTlsContext,
    )
}


# --- rules Envoy applies when it loads a resource ----------------------------------------


def _unpacked(packed: any_pb2.Any, message: type[Message]) -> Message | None:
    if packed.type_url != _type_url(message):
        return None
    inner = message()
    try:
        inner.ParseFromString(packed.value)
    except DecodeError:
        return None
    return inner


def _check_hcm(walker: _Walker, hcm: Message, path: str) -> None:
    assert isinstance(hcm, _HCM)
    sources = [name for name in ("rds", "route_config") if hcm.HasField(name)]
    if len(sources) != 1:
        walker.add(path, "exactly one of rds or route_config is required")
    if hcm.HasField("rds") and not hcm.rds.config_source.HasField("ads"):
        walker.add(f"{path}.rds.config_source", "only ADS is supported as the RDS source")
    if hcm.HasField("route_config"):
        _check_route_config(walker, hcm.route_config, f"{path}.route_config")
    if not hcm.http_filters:
        walker.add(f"{path}.http_filters", "the router filter is required")
    elif hcm.http_filters[-1].typed_config.type_url != _type_url(router_pb2.Router):
        walker.add(
            f"{path}.http_filters[{len(hcm.http_filters) - 1}]",
            "the last HTTP filter must be the router",
        )


def _check_filters(
    walker: _Walker, filters: Iterable[listener_components_pb2.Filter], path: str
) -> None:
    for index, network in enumerate(filters):
        packed = network.typed_config
        here = f"{path}[{index}].typed_config"
        hcm = _unpacked(packed, _HCM)
        if hcm is not None:
            _check_hcm(walker, hcm, here)
        proxy = _unpacked(packed, tcp_proxy_pb2.TcpProxy)
        if isinstance(proxy, tcp_proxy_pb2.TcpProxy) and not proxy.cluster:
            walker.add(f"{here}.cluster", "a cluster is required")


def _check_listener(walker: _Walker, listener: listener_pb2.Listener) -> None:
    if not listener.HasField("address"):
        walker.add("address", "an address is required")
    try:
        validate_filter_chains(listener)
    except ErrorList as errors:
        for error in errors.errors:
            walker.add(error.field or "filter_chains", error.message)
    except MeshletError as error:
        walker.add(error.field or "filter_chains", error.message)
    for index, chain in enumerate(listener.filter_chains):
        _check_filters(walker, chain.filters, f"filter_chains[{index}].filters")
    if listener.HasField("default_filter_chain"):
        _check_filters(
            walker, listener.default_filter_chain.filters, "default_filter_chain.filters"
        )


def _check_cluster(walker: _Walker, cluster: cluster_pb2.Cluster) -> None:
    if cluster.type == _C.STATIC and not cluster.HasField("load_assignment"):
        walker.add("load_assignment", "a STATIC cluster needs a load_assignment")
    if cluster.type == _C.EDS:
        source = cluster.eds_cluster_config.eds_config
        if not source.HasField("ads"):
            walker.add("eds_cluster_config.eds_config", "only ADS is supported as the EDS source")
    if cluster.type == _C.ORIGINAL_DST and cluster.lb_policy != _C.CLUSTER_PROVIDED:
        walker.add("lb_policy", "an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED")


def _check_route_config(walker: _Walker, config: route_pb2.RouteConfiguration, path: str) -> None:
    prefix = f"{path}." if path else ""
    for v, host in enumerate(config.virtual_hosts):
        if not host.domains:
            walker.add(f"{prefix}virtual_hosts[{v}].domains", "at least one domain is required")
        for r, route in enumerate(host.routes):
            here = f"{prefix}virtual_hosts[{v}].routes[{r}]"
            if not (route.HasField("route") or route.HasField("direct_response")):
                walker.add(here, "a route or a direct_response is required")
            elif route.HasField("route") and not route.route.cluster:
                walker.add(f"{here}.route.cluster", "a cluster is required")
            if not route.match.WhichOneof("path_specifier"):
                walker.add(f"{here}.match", "a prefix or a path is required")


def resource_name(message: Message) -> str:
    """The name xDS knows a resource by (``cluster_name`` for endpoints)."""
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return str(message.cluster_name)
    return str(getattr(message, "name", ""))


def unpack_resources(
    type_url: str, resources: Iterable[any_pb2.Any]
) -> tuple[list[Message], list[str]]:
    """The messages of a discovery response, and a message for each that cannot be read."""
    kind = RESOURCE_KINDS.get(type_url)
    if kind is None:
        return [], [f"unsupported resource type {type_url}"]
    messages: list[Message] = []
    problems: list[str] = []
    for index, packed in enumerate(resources):
        if packed.type_url != type_url:
            problems.append(
                f"resources[{index}]: type {_short(packed.type_url)} in a "
                f"{_short(type_url)} response"
            )
            continue
        message = kind.message()
        try:
            message.ParseFromString(packed.value)
        except DecodeError as exc:
            problems.append(f"resources[{index}]: cannot decode {_short(type_url)}: {exc}")
            continue
        messages.append(message)
    return messages, problems


def validate_resources(type_url: str, resources: Iterable[Message | any_pb2.Any]) -> list[str]:
    """Every problem with the resources of one response, each naming resource and field.

    ``resources`` may be the response's ``Any``s or the messages already unpacked.
    An empty list means the proxy can serve them all.
    """
    kind = RESOURCE_KINDS.get(type_url)
    if kind is None:
        return [f"unsupported resource type {type_url}"]
    items = list(resources)
    packed = [item for item in items if isinstance(item, any_pb2.Any)]
    messages, problems = unpack_resources(type_url, packed)
    messages.extend(item for item in items if not isinstance(item, any_pb2.Any))
    seen: set[str] = set()
    for message in messages:
        if not isinstance(message, kind.message):
            problems.append(f"{message.DESCRIPTOR.full_name} in a {_short(type_url)} response")
            continue
        name = resource_name(message)
        label = f'{kind.label} "{name}"'
        if not name:
            problems.append(f"{kind.label} without a name")
        elif name in seen:
            problems.append(f"{label}: duplicate name")
        seen.add(name)
        walker = _Walker()
        walker.walk(message, "")
        if isinstance(message, listener_pb2.Listener):
            _check_listener(walker, message)
        elif isinstance(message, cluster_pb2.Cluster):
            _check_cluster(walker, message)
        elif isinstance(message, route_pb2.RouteConfiguration):
            _check_route_config(walker, message, "")
        problems.extend(
            f"{label}: {path}: {text}" if path else f"{label}: {text}"
            for path, text in dict.fromkeys(walker.problems)
        )
    return problems
