"""Small helpers shared by the builders: names Istio gives things, and proto plumbing.

Everything here is pure. The constants are the names a user sees in a config dump, so
they follow Istio and Envoy to the letter.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3 import address_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

__all__ = [
    "ALL_ISTIO_MTLS_ALPNS",
    "ALPN_DOWNSTREAM_WITH_MXC",
    "ALPN_HTTP",
    "ALPN_IN_MESH_WITH_MXC",
    "BLACKHOLE_CLUSTER",
    "HTTP_CONNECTION_MANAGER",
    "HTTP_INSPECTOR",
    "INBOUND_PASSTHROUGH_BIND_IP",
    "INBOUND_PASSTHROUGH_CLUSTER",
    "MESH_MTLS_CIPHERS",
    "MTLS_HTTP_ALPNS",
    "ORIGINAL_DST",
    "PASSTHROUGH_CLUSTER",
    "PLAINTEXT_HTTP_ALPNS",
    "RAW_BUFFER",
    "ROUTER",
    "SDS_CLUSTER",
    "SDS_DEFAULT",
    "SDS_ROOT",
    "TCP_PROXY",
    "TLS",
    "TLS_INSPECTOR",
    "TLS_TRANSPORT_SOCKET",
    "VIRTUAL_INBOUND",
    "VIRTUAL_INBOUND_BLACKHOLE",
    "VIRTUAL_INBOUND_CATCHALL_HTTP",
    "VIRTUAL_OUTBOUND",
    "ads_config_source",
    "duration",
    "encode_embedded",
    "inbound_cluster_name",
    "outbound_cluster_name",
    "outbound_sni",
    "pack",
    "sds_secret_config",
    "socket_address",
    "splice_repeated",
]

# Listener and chain names (pilot/pkg/model and pilot/pkg/networking/util).
VIRTUAL_INBOUND = "virtualInbound"
VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND_BLACKHOLE = "virtualInbound-blackhole"
VIRTUAL_INBOUND_CATCHALL_HTTP = "virtualInbound-catchall-http"
PASSTHROUGH_FILTER_CHAIN = "PassthroughFilterChain"
VIRTUAL_OUTBOUND_BLACKHOLE = "virtualOutbound-blackhole"

# Cluster names.
BLACKHOLE_CLUSTER = "BlackHoleCluster"
PASSTHROUGH_CLUSTER = "PassthroughCluster"
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"
INBOUND_PASSTHROUGH_BIND_IP = "127.0.0.6"

# Envoy's well-known extension names.
HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
ROUTER = "envoy.filters.http.router"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"
ORIGINAL_DST = "envoy.filters.listener.original_dst"
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"

# Transport protocols the TLS inspector reports.
TLS = "tls"
RAW_BUFFER = "raw_buffer"

# SDS resource names and the bootstrap cluster that serves them.
SDS_CLUSTER = "sds-grpc"
SDS_DEFAULT = "default"
SDS_ROOT = "ROOTCA"

# ALPN lists (pilot/pkg/networking/util and core/listener.go).
ALPN_HTTP = ("h2", "http/1.1")
ALPN_DOWNSTREAM_WITH_MXC = ("istio-peer-exchange", "h2", "http/1.1")
ALPN_IN_MESH_WITH_MXC = ("istio-peer-exchange", "istio")
ALPN_IN_MESH_H2_WITH_MXC = ("istio-peer-exchange", "istio", "h2")
PLAINTEXT_HTTP_ALPNS = ("http/1.1", "h2c")
MTLS_HTTP_ALPNS = ("istio-http/1.0", "istio-http/1.1", "istio-h2")
ALL_ISTIO_MTLS_ALPNS = (
    "istio",
    "istio-peer-exchange",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
)

# Server-side mesh mTLS ciphers (pilot/pkg/security/authn/utils SupportedCiphers).
MESH_MTLS_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
)


def pack(message: Message) -> any_pb2.Any:
    """``message`` as an ``Any`` with Envoy's type URL (``type.googleapis.com/<full name>``)."""
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return packed


def duration(seconds: int = 0, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def socket_address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ip, port_value=port)
    )


def uint32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def boolean(value: bool) -> wrappers_pb2.BoolValue:
    return wrappers_pb2.BoolValue(value=value)


def ads_config_source() -> config_source_pb2.ConfigSource:
    """The config source Istio writes for EDS and RDS: ADS, no initial fetch timeout, v3."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        initial_fetch_timeout=duration(0),
        resource_api_version=config_source_pb2.V3,
    )


def sds_secret_config(name: str) -> secret_pb2.SdsSecretConfig:
    """An SDS reference to the pod agent (cluster ``sds-grpc``), as Istio builds it.

    ``initial_fetch_timeout: 0s`` is set only for the workload certificate and the mesh
    root, as Istio does; file secrets keep Envoy's default.
    """
    source = config_source_pb2.ConfigSource(
        api_config_source=config_source_pb2.ApiConfigSource(
            api_type=config_source_pb2.ApiConfigSource.GRPC,
            set_node_on_first_message_only=True,
            transport_api_version=config_source_pb2.V3,
            grpc_services=[
                grpc_service_pb2.GrpcService(
                    envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER)
                )
            ],
        ),
        resource_api_version=config_source_pb2.V3,
    )
    if name in (SDS_DEFAULT, SDS_ROOT):
        source.initial_fetch_timeout.CopyFrom(duration(0))
    return secret_pb2.SdsSecretConfig(name=name, sds_config=source)


def file_cert_name(certificate: str, private_key: str) -> str:
    """Istio's SDS name of a certificate read from files; "" unless both paths are set."""
    if certificate and private_key:
        return f"file-cert:{certificate}~{private_key}"
    return ""


def file_root_name(ca_certificates: str) -> str:
    """Istio's SDS name of a CA bundle read from a file; "" when no path is set."""
    return f"file-root:{ca_certificates}" if ca_certificates else ""


def inbound_cluster_name(port: int) -> str:
    """``inbound|<port>||`` (``model.BuildInboundSubsetKey``)."""
    return f"inbound|{port}||"


def outbound_cluster_name(port: int, hostname: str, subset: str = "") -> str:
    """``outbound|<port>|<subset>|<host>`` (``model.BuildSubsetKey``)."""
    return f"outbound|{port}|{subset}|{hostname}"


def outbound_sni(port: int, hostname: str, subset: str = "") -> str:
    """The SNI a client sidecar sends for mesh mTLS: ``outbound_.<port>_.<subset>_.<host>``."""
    return f"outbound_.{port}_.{subset}_.{hostname}"


def spiffe_uri_prefix(trust_domain: str) -> common_pb2.SubjectAltNameMatcher:
    return common_pb2.SubjectAltNameMatcher(
        san_type=common_pb2.SubjectAltNameMatcher.URI,
        matcher=string_pb2.StringMatcher(prefix=f"spiffe://{trust_domain}/"),
    )


def spiffe_uri_exact(identity: str) -> common_pb2.SubjectAltNameMatcher:
    return common_pb2.SubjectAltNameMatcher(
        san_type=common_pb2.SubjectAltNameMatcher.URI,
        matcher=string_pb2.StringMatcher(exact=identity),
    )


def transport_socket(message: Message) -> core_base_pb2.TransportSocket:
    return core_base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=pack(message))


# --- wire encoding ----------------------------------------------------------------------
#
# A repeated message field is encoded as one ``tag, length, bytes`` record per element,
# and a deterministic encoding writes fields in field-number order. So a message's bytes
# are the bytes of its fields before the repeated one, the elements' records, and the
# bytes of its later fields: a control plane can keep the elements' records and splice
# them into a frame instead of building and encoding the whole message again.


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_embedded(field_number: int, data: bytes) -> bytes:
    """The record of one element of a message field: its tag, its length, its bytes."""
    return _varint(field_number << 3 | 2) + _varint(len(data)) + data


def splice_repeated(frame: Message, field: str, records: Iterable[bytes]) -> bytes:
    """The deterministic encoding of ``frame`` with ``records`` (``encode_embedded``) as the
    elements of its repeated message field ``field``, which ``frame`` leaves empty."""
    number = frame.DESCRIPTOR.fields_by_name[field].number
    if len(getattr(frame, field)):
        raise ValueError(f"the frame already has {field}")
    whole = frame.SerializeToString(deterministic=True)
    head_message = type(frame)()
    head_message.CopyFrom(frame)
    for descriptor, _ in frame.ListFields():
        if descriptor.number > number:
            head_message.ClearField(descriptor.name)
    head = head_message.SerializeToString(deterministic=True)
    if not whole.startswith(head):
        raise ValueError(f"{frame.DESCRIPTOR.full_name} is not encoded in field order")
    return b"".join((head, *records, whole[len(head) :]))
