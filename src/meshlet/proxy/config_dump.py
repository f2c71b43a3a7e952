"""Envoy's ``/config_dump``: the config a sidecar runs, as ``envoy.admin.v3.ConfigDump``.

Theory of operation
-------------------
``build_config_dump`` assembles the dump from what the agent holds: the bootstrap
(node, static clusters for the SDS and xDS sockets), the dynamic clusters, listeners
and route configurations (each with the version and time it was last updated), and the
secrets. The configs come in Envoy's order (bootstrap, clusters, listeners, scoped
routes, routes, secrets). A listener that no worker serves yet (waiting for a secret,
or its address not bindable) is shown as *warming*, as Envoy shows a listener that
waits for its secrets; a secret the agent cannot serve yet is in
``dynamic_warming_secrets`` with ``error_state.details`` saying why.

``render_config_dump`` applies the query as Envoy's admin handler does:

- ``mask=a,b``: a field mask applied to each top-level config; configs for which the
  mask names no field are left out; if it fits none, 400;
- ``resource=name``: the elements of the repeated field ``name`` (e.g.
  ``dynamic_active_clusters``) of the config that has it, each as a config of its own,
  with ``mask`` applied inside the resource (through its ``Any``); 404 when no config
  has the field, 400 when the field is not repeated;
- ``name_regex=re``: only resources whose name matches.

Private keys are redacted as Envoy's ``MessageUtil::redact`` does: the bytes become
``[redacted]``. The JSON is Envoy's: proto field names, ``@type`` on every ``Any``,
one-space indentation.

Pure: protos in, bytes out (``now`` is passed in).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import any_pb2, field_mask_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message

__all__ = [
    "REDACTED",
    "Dumped",
    "SecretState",
    "build_config_dump",
    "config_dump_json",
    "render_config_dump",
    "static_pipe_cluster",
]

REDACTED = b"[redacted]"


@dataclass(frozen=True, slots=True)
class Dumped:
    """One dynamic resource with the version it came in and when it was last updated."""

    message: Message
    version_info: str
    last_updated: datetime


@dataclass(frozen=True, slots=True)
class SecretState:
    """One secret the proxy asked for: served (``secret``) or not yet (``error`` says why)."""

    name: str
    secret: secret_pb2.Secret | None
    version_info: str = ""
    last_updated: datetime | None = None
    error: str | None = None


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def static_pipe_cluster(name: str, path: str) -> cluster_pb2.Cluster:
    """A STATIC cluster to a unix socket, as Istio's bootstrap has ``sds-grpc``."""
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(
                                address=address_pb2.Address(pipe=address_pb2.Pipe(path=path))
                            )
                        )
                    ]
                )
            ],
        ),
    )


def _redacted(secret: secret_pb2.Secret) -> secret_pb2.Secret:
    copy = secret_pb2.Secret()
    copy.CopyFrom(secret)
    if copy.HasField("tls_certificate"):
        certificate = copy.tls_certificate
        if certificate.HasField("private_key"):
            certificate.private_key.Clear()
            certificate.private_key.inline_bytes = REDACTED
    return copy


def build_config_dump(
    *,
    node: base_pb2.Node,
    bootstrap_time: datetime,
    static_clusters: Sequence[cluster_pb2.Cluster],
    clusters: Sequence[Dumped],
    cluster_version: str,
    listeners: Sequence[Dumped],
    warming_listeners: Iterable[str],
    listener_version: str,
    routes: Sequence[Dumped],
    secrets: Sequence[SecretState],
) -> config_dump_pb2.ConfigDump:
    """The whole dump (see the module docstring); secrets are redacted here."""
    bootstrap = config_dump_pb2.BootstrapConfigDump(
        bootstrap=bootstrap_pb2.Bootstrap(
            node=node,
            static_resources=bootstrap_pb2.Bootstrap.StaticResources(clusters=static_clusters),
        ),
        last_updated=_timestamp(bootstrap_time),
    )
    cluster_dump = config_dump_shared_pb2.ClustersConfigDump(version_info=cluster_version)
    for static in static_clusters:
        cluster_dump.static_clusters.add(
            cluster=_pack(static), last_updated=_timestamp(bootstrap_time)
        )
    for item in clusters:
        cluster_dump.dynamic_active_clusters.add(
            version_info=item.version_info,
            cluster=_pack(item.message),
            last_updated=_timestamp(item.last_updated),
        )
    warming = set(warming_listeners)
    listener_dump = config_dump_shared_pb2.ListenersConfigDump(version_info=listener_version)
    for item in listeners:
        assert isinstance(item.message, listener_pb2.Listener)
        entry = listener_dump.dynamic_listeners.add(name=item.message.name)
        state = entry.warming_state if item.message.name in warming else entry.active_state
        state.version_info = item.version_info
        state.listener.CopyFrom(_pack(item.message))
        state.last_updated.CopyFrom(_timestamp(item.last_updated))
    route_dump = config_dump_shared_pb2.RoutesConfigDump()
    for item in routes:
        assert isinstance(item.message, route_pb2.RouteConfiguration)
        route_dump.dynamic_route_configs.add(
            version_info=item.version_info,
            route_config=_pack(item.message),
            last_updated=_timestamp(item.last_updated),
        )
    secret_dump = config_dump_pb2.SecretsConfigDump()
    for state in secrets:
        if state.secret is not None:
            active = secret_dump.dynamic_active_secrets.add(
                name=state.name,
                version_info=state.version_info,
                secret=_pack(_redacted(state.secret)),
            )
            if state.last_updated is not None:
                active.last_updated.CopyFrom(_timestamp(state.last_updated))
        else:
            warming_secret = secret_dump.dynamic_warming_secrets.add(
                name=state.name,
                version_info="uninitialized",
                secret=_pack(secret_pb2.Secret(name=state.name)),
            )
            if state.error:
                warming_secret.error_state.details = state.error
    dump = config_dump_pb2.ConfigDump()
    for config in (
        bootstrap,
        cluster_dump,
        listener_dump,
        config_dump_shared_pb2.ScopedRoutesConfigDump(),
        route_dump,
        secret_dump,
    ):
        dump.configs.append(_pack(config))
    return dump


def config_dump_json(message: Message) -> bytes:
    """JSON as Envoy prints it (proto field names, one-space indent)."""
    text: str = json_format.MessageToJson(message, preserving_proto_field_name=True, indent=1)
    return (text + "\n").encode()


def _unpack(packed: any_pb2.Any) -> Message:
    from google.protobuf import symbol_database

    name = packed.type_url.rsplit("/", 1)[-1]
    message = symbol_database.Default().GetSymbol(name)()
    packed.Unpack(message)
    return message


def _mask(paths: Sequence[str]) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=[p for p in paths if p])


def _trim(mask: field_mask_pb2.FieldMask, message: Message) -> Message | None:
    """``message`` with only the masked fields, or None when the mask does not fit it."""
    if not mask.IsValidForDescriptor(message.DESCRIPTOR):
        return None
    trimmed = type(message)()
    mask.MergeMessage(message, trimmed)
    return trimmed


def _trim_resource(mask: field_mask_pb2.FieldMask, message: Message) -> Message | None:
    """Envoy's ``trimResourceMessage``: paths through the resource's ``Any`` reach inside it."""
    outer: list[str] = []
    inner: list[str] = []
    any_field = ""
    for path in mask.paths:
        head, _, rest = path.partition(".")
        field = message.DESCRIPTOR.fields_by_name.get(head)
        if (
            field is not None
            and field.message_type is not None
            and field.message_type.full_name == "google.protobuf.Any"
            and not field.is_repeated
        ):
            any_field = head
            outer.append(head)
            inner.append(rest)
        else:
            outer.append(path)
    result = type(message)()
    result.CopyFrom(message)
    if any_field and result.HasField(any_field):
        packed = getattr(result, any_field)
        resource = _unpack(packed)
        trimmed = _trim(_mask(inner), resource)
        if trimmed is None:
            return None
        packed.Pack(trimmed)
    return _trim(_mask(outer), result)


def _resource_name(message: Message) -> str:
    for field in ("name", "cluster", "listener", "route_config", "secret"):
        if field in message.DESCRIPTOR.fields_by_name:
            value = getattr(message, field)
            if isinstance(value, str):
                return value
            if isinstance(value, any_pb2.Any):
                return str(getattr(_unpack(value), "name", ""))
    return ""


def render_config_dump(
    dump: config_dump_pb2.ConfigDump,
    *,
    mask: str | None = None,
    resource: str | None = None,
    name_regex: str | None = None,
) -> tuple[int, bytes]:
    """``(status, body)`` for ``/config_dump`` with Envoy's query parameters."""
    try:
        matcher = re.compile(name_regex) if name_regex else None
    except re.error as exc:
        return 400, f"Error while parsing name_regex from {name_regex}: {exc}\n".encode()
    configs = [_unpack(packed) for packed in dump.configs]
    if matcher is not None:
        configs = [_filter_names(config, matcher) for config in configs]
    paths = mask.split(",") if mask else []
    out = config_dump_pb2.ConfigDump()
    if resource:
        for config in configs:
            field = config.DESCRIPTOR.fields_by_name.get(resource)
            if field is None:
                continue
            if not field.is_repeated:
                return 400, (
                    f"{resource} is not a repeated field. Use ?mask={resource} to get only "
                    f"this field"
                ).encode()
            for element in getattr(config, resource):
                chosen: Message | None = element
                if paths:
                    chosen = _trim_resource(_mask(paths), element)
                    if chosen is None:
                        return 400, f"FieldMask {mask} could not be successfully used.".encode()
                out.configs.append(_pack(chosen))
            return 200, config_dump_json(out)
        return 404, f"{resource} not found in config dump".encode()
    for config in configs:
        kept: Message | None = _trim(_mask(paths), config) if paths else config
        if kept is not None:
            out.configs.append(_pack(kept))
    if paths and not out.configs:
        return 400, (f"FieldMask {mask} could not be successfully applied to any configs.").encode()
    return 200, config_dump_json(out)


def _filter_names(config: Message, matcher: re.Pattern[str]) -> Message:
    copy = type(config)()
    copy.CopyFrom(config)
    for field in copy.DESCRIPTOR.fields:
        if not field.is_repeated or field.message_type is None:
            continue
        values = getattr(copy, field.name)
        keep = [v for v in values if matcher.search(_resource_name(v))]
        if len(keep) != len(values):
            kept = [type(v)() for v in keep]
            for target, source in zip(kept, keep, strict=True):
                target.CopyFrom(source)
            del values[:]
            values.extend(kept)
    return copy
