"""SDS resource names: the ones Istio uses, how file names are read back, and which
names a proxy's built config refers to (what its agent must serve).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from meshlet.pilot import _xds

__all__ = [
    "FILE_ROOT_SYSTEM",
    "ROOT_CA",
    "WORKLOAD_CERT",
    "SdsCertificateConfig",
    "file_cert_name",
    "file_root_name",
    "parse_resource_name",
    "referenced_secret_names",
]

WORKLOAD_CERT = _xds.SDS_DEFAULT
ROOT_CA = _xds.SDS_ROOT
FILE_ROOT_SYSTEM = "file-root:system"
file_cert_name = _xds.file_cert_name
file_root_name = _xds.file_root_name

_CERT_PREFIX = "file-cert:"
_ROOT_PREFIX = "file-root:"


@dataclass(frozen=True, slots=True)
class SdsCertificateConfig:
    """File paths named by an SDS resource name (Istio's ``SdsCertificateConfig``)."""

    certificate_path: str = ""
    private_key_path: str = ""
    ca_certificate_path: str = ""

    @property
    def is_root(self) -> bool:
        return bool(self.ca_certificate_path)


def parse_resource_name(name: str) -> SdsCertificateConfig | None:
    """``file-cert:<cert>~<key>`` or ``file-root:<ca>`` as paths; None for other names.

    As Istio's ``SdsCertificateConfigFromResourceName``: a cert name must split on
    ``~`` into exactly two non-empty paths, a root name must name one path.
    """
    if name.startswith(_CERT_PREFIX):
        parts = name[len(_CERT_PREFIX) :].split("~")
        if len(parts) == 2 and all(parts):
            return SdsCertificateConfig(certificate_path=parts[0], private_key_path=parts[1])
        return None
    if name.startswith(_ROOT_PREFIX):
        path = name[len(_ROOT_PREFIX) :]
        return SdsCertificateConfig(ca_certificate_path=path) if path else None
    return None


def _context_names(context: tls_pb2.CommonTlsContext) -> Iterable[str]:
    for config in context.tls_certificate_sds_secret_configs:
        yield config.name
    if context.HasField("combined_validation_context"):
        yield context.combined_validation_context.validation_context_sds_secret_config.name
    if context.HasField("validation_context_sds_secret_config"):
        yield context.validation_context_sds_secret_config.name


def referenced_secret_names(
    listeners: Iterable[listener_pb2.Listener], clusters: Iterable[cluster_pb2.Cluster]
) -> tuple[str, ...]:
    """Every SDS name the listeners' and clusters' TLS contexts ask for, sorted."""
    names: set[str] = set()
    for listener in listeners:
        for chain in listener.filter_chains:
            if chain.HasField("transport_socket"):
                downstream = tls_pb2.DownstreamTlsContext()
                if chain.transport_socket.typed_config.Unpack(downstream):
                    names.update(_context_names(downstream.common_tls_context))
    for cluster in clusters:
        if cluster.HasField("transport_socket"):
            upstream = tls_pb2.UpstreamTlsContext()
            if cluster.transport_socket.typed_config.Unpack(upstream):
                names.update(_context_names(upstream.common_tls_context))
    names.discard("")
    return tuple(sorted(names))
