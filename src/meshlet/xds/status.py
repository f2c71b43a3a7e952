"""Sync status of connected proxies: what the ADS server knows, and how it travels.

A proxy's state per xDS type is the one istiod reports and ``istioctl proxy-status``
prints: ``SYNCED`` (the last response sent was ACKed), ``STALE`` (sent, not ACKed yet),
``NOT SENT`` (nothing of that type sent on this connection), or ``ERROR`` with the
proxy's NACK message.

It travels as istiod sends it to ``istioctl``: over the ADS stream itself. A client asks
with a ``DiscoveryRequest`` of type ``istio.io/debug/syncz``; the answer is one
``DiscoveryResponse`` whose resources are ``envoy.service.status.v3.ClientConfig``, one
per connected proxy, each with a ``generic_xds_configs`` entry per type (its
``config_status``, the version sent, and the NACK in ``error_state``). The server's id
is in ``control_plane.identifier`` as JSON (``{"Component": "istiod", "ID": …}``).

Pure: values in, protos out (and back).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2, struct_pb2

from meshlet.xds.cache import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE

__all__ = [
    "DISPLAY_TYPES",
    "SYNCZ_TYPE",
    "ProxyStatus",
    "SyncState",
    "TypeStatus",
    "status_from_response",
    "syncz_response",
]

#: The type URL istioctl asks istiod's ADS for sync status with.
SYNCZ_TYPE = "istio.io/debug/syncz"

#: The types ``proxy-status`` shows, in its column order.
DISPLAY_TYPES = (CLUSTER_TYPE, LISTENER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE)


class SyncState(enum.Enum):
    """Envoy's ``ConfigStatus`` values as istioctl prints them."""

    SYNCED = "SYNCED"
    STALE = "STALE"
    NOT_SENT = "NOT SENT"
    ERROR = "ERROR"


_TO_PROTO = {
    SyncState.SYNCED: csds_pb2.SYNCED,
    SyncState.STALE: csds_pb2.STALE,
    SyncState.NOT_SENT: csds_pb2.NOT_SENT,
    SyncState.ERROR: csds_pb2.ERROR,
}
_FROM_PROTO = {value: key for key, value in _TO_PROTO.items()}


@dataclass(frozen=True, slots=True)
class TypeStatus:
    """One xDS type of one connection."""

    type_url: str
    state: SyncState
    version_sent: str = ""
    version_acked: str = ""
    nack: str = ""  # the proxy's error_detail message, when state is ERROR
    last_updated: float | None = None  # when the last response was sent (epoch seconds)


@dataclass(frozen=True, slots=True)
class ProxyStatus:
    """One connected proxy (one ADS stream)."""

    node_id: str
    cluster_id: str
    istio_version: str
    types: tuple[TypeStatus, ...]

    def of(self, type_url: str) -> TypeStatus:
        for item in self.types:
            if item.type_url == type_url:
                return item
        return TypeStatus(type_url, SyncState.NOT_SENT)


def _metadata(values: Mapping[str, str]) -> struct_pb2.Struct:
    meta = struct_pb2.Struct()
    for key, value in sorted(values.items()):
        meta.fields[key].string_value = value
    return meta


def syncz_response(
    statuses: Iterable[ProxyStatus], *, control_plane_id: str, version: str, nonce: str
) -> discovery_pb2.DiscoveryResponse:
    """The ``istio.io/debug/syncz`` answer for ``statuses`` (sorted by node id)."""
    resources = []
    for status in sorted(statuses, key=lambda s: s.node_id):
        config = csds_pb2.ClientConfig(
            node=base_pb2.Node(
                id=status.node_id,
                metadata=_metadata(
                    {"CLUSTER_ID": status.cluster_id, "ISTIO_VERSION": status.istio_version}
                ),
            )
        )
        for item in status.types:
            entry = config.generic_xds_configs.add(
                type_url=item.type_url,
                version_info=item.version_sent,
                config_status=_TO_PROTO[item.state],
            )
            if item.last_updated is not None:
                entry.last_updated.FromNanoseconds(int(item.last_updated * 1e9))
            if item.nack:
                entry.error_state.details = item.nack
                entry.error_state.version_info = item.version_sent
        packed = any_pb2.Any()
        packed.Pack(config, deterministic=True)
        resources.append(packed)
    response = discovery_pb2.DiscoveryResponse(
        type_url=SYNCZ_TYPE, version_info=version, nonce=nonce, resources=resources
    )
    response.control_plane.identifier = json.dumps(
        {"Component": "istiod", "ID": control_plane_id, "Info": {"version": version}},
        sort_keys=True,
    )
    return response


def status_from_response(
    response: discovery_pb2.DiscoveryResponse,
) -> tuple[str, list[ProxyStatus]]:
    """The server id and the proxies of a syncz answer (what ``syncz_response`` made)."""
    server_id = ""
    if response.control_plane.identifier:
        try:
            server_id = str(json.loads(response.control_plane.identifier).get("ID", ""))
        except (ValueError, AttributeError):
            server_id = response.control_plane.identifier
    statuses = []
    for packed in response.resources:
        config = csds_pb2.ClientConfig()
        if not packed.Unpack(config):
            continue
        fields = config.node.metadata.fields
        types = tuple(
            TypeStatus(
                type_url=item.type_url,
                state=_FROM_PROTO.get(item.config_status, SyncState.NOT_SENT),
                version_sent=item.version_info,
                version_acked=item.version_info if item.config_status == csds_pb2.SYNCED else "",
                nack=item.error_state.details,
                last_updated=(
                    item.last_updated.ToNanoseconds() / 1e9
                    if item.HasField("last_updated")
                    else None
                ),
            )
            for item in config.generic_xds_configs
        )
        statuses.append(
            ProxyStatus(
                node_id=config.node.id,
                cluster_id=fields["CLUSTER_ID"].string_value if "CLUSTER_ID" in fields else "",
                istio_version=(
                    fields["ISTIO_VERSION"].string_value if "ISTIO_VERSION" in fields else ""
                ),
                types=types,
            )
        )
    return server_id, statuses
