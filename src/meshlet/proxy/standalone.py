"""Standalone sidecar config: Sidecar (and PeerAuthentication) objects to Envoy resources.

Theory of operation
-------------------
``meshlet sidecar -f FILE…`` runs a sidecar next to a process on a host, with no
cluster and no mesh CA. The objects are checked with Istio's validation (the same
rules and messages as ``apply``) and turned into Envoy resources by the control
plane's own builders (``meshlet.pilot``); nothing here builds a filter chain.

Each Sidecar is the scope of one proxy whose workload has the Sidecar's selector
labels, lives in its namespace and has the host's loopback as its address, so a
``defaultEndpoint`` of ``0.0.0.0:P`` (the instance IP) is ``127.0.0.1:P`` here.
``ENABLE_TLS_ON_SIDECAR_INGRESS`` is on.

There is no mesh identity, so mesh mTLS cannot be offered: a mesh-wide DISABLE policy
is composed under the user's PeerAuthentications, and a PeerAuthentication that asks
for STRICT or PERMISSIVE (for the workload or one of its ports) is refused with a
message saying why. So every ingress port is mTLS DISABLE and its ``tls`` block, if
any, is what the port serves.

Each ingress port becomes a listener of its own bound to ``bind:port`` (captureMode
NONE, as Istio builds bound listeners), named ``<bind>_<port>`` like its filter chain,
holding the chains pilot's ``virtualInbound`` has for that port; the clusters are
pilot's. An ingress port without a ``defaultEndpoint`` is refused: with no traffic
capture there is no original destination to pass the connection to.

Pure: resources in, protos out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2

from meshlet.errors import ConfigError, ErrorList, MeshletError
from meshlet.pilot import _xds
from meshlet.pilot._inbound import plan_inbound
from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.listeners import build_inbound_listener
from meshlet.pilot.snapshot import Proxy, Snapshot, Workload
from meshlet.proxy.config import CLUSTER_TYPE, LISTENER_TYPE, validate_resources
from meshlet.resources.istio import MTLSMode, PeerAuthentication, Sidecar
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.objects import Resource
from meshlet.resources.validation import Level, validate

__all__ = ["LOOPBACK", "StandaloneConfig", "build_standalone_config"]

LOOPBACK = "127.0.0.1"
_NO_IDENTITY_POLICY = "meshlet-standalone-no-mesh-identity"
_OLDEST = "0001-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class StandaloneConfig:
    """What the standalone sidecar serves: its node id and its Envoy resources."""

    node_id: str
    listeners: tuple[listener_pb2.Listener, ...]
    clusters: tuple[cluster_pb2.Cluster, ...]
    workload_name: str = ""  # the first Sidecar's name (its workload, for the metrics)
    labels: tuple[tuple[str, str], ...] = ()  # its workloadSelector labels


def _refuse(message: str, resource: Resource, path: tuple[str | int, ...] = ()) -> ConfigError:
    return ConfigError(
        message,
        location=resource.location_of(path),
        resource=resource.ref,
        field=".".join(str(p) for p in path) or None,
    )


def _check(resources: Sequence[Resource]) -> None:
    errors: list[MeshletError] = []
    for resource in resources:
        group = resource.info.group
        if (group, resource.kind) not in (
            ("networking.istio.io", "Sidecar"),
            ("security.istio.io", "PeerAuthentication"),
        ):
            errors.append(
                _refuse(
                    f"meshlet sidecar reads Sidecar and PeerAuthentication objects, "
                    f"not {resource.kind}",
                    resource,
                )
            )
            continue
        for finding in validate(resource):
            if finding.level is Level.ERROR:
                errors.append(_refuse(finding.message, resource, finding.path))
    if errors:
        raise ErrorList(errors)


def _refuse_mesh_mtls(resource: Resource, policy: PeerAuthentication) -> None:
    wanted: list[tuple[MTLSMode, tuple[str | int, ...]]] = []
    if policy.mtls_mode in (MTLSMode.STRICT, MTLSMode.PERMISSIVE):
        wanted.append((policy.mtls_mode, ("spec", "mtls", "mode")))
    raw_ports = dict(resource.spec.get("portLevelMtls") or {})
    for key, value in raw_ports.items():
        text = str((value or {}).get("mode") or "")
        if text in (MTLSMode.STRICT.value, MTLSMode.PERMISSIVE.value):
            wanted.append((MTLSMode(text), ("spec", "portLevelMtls", key, "mode")))
    if wanted:
        mode, path = wanted[0]
        raise _refuse(
            f"mTLS mode {mode.value} needs a mesh identity, and a standalone sidecar has "
            f"none (no mesh CA): use mode DISABLE and the Sidecar's ingress tls instead",
            resource,
            path,
        )


def _bound_listener(
    name: str, bind: str, port: int, chains: list[listener_components_pb2.FilterChain]
) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=name,
        address=_xds.socket_address(bind, port),
        traffic_direction=core_base_pb2.INBOUND,
        continue_on_listener_filters_timeout=True,
        listener_filters=[
            listener_components_pb2.ListenerFilter(
                name=_xds.TLS_INSPECTOR, typed_config=_xds.pack(tls_inspector_pb2.TlsInspector())
            ),
            listener_components_pb2.ListenerFilter(
                name=_xds.HTTP_INSPECTOR,
                typed_config=_xds.pack(http_inspector_pb2.HttpInspector()),
            ),
        ],
        filter_chains=chains,
    )


def build_standalone_config(resources: Sequence[Resource]) -> StandaloneConfig:
    """The listeners and clusters for these objects; ``ConfigError``/``ErrorList`` if bad."""
    _check(resources)
    sidecar_resources = [r for r in resources if r.kind == "Sidecar"]
    if not sidecar_resources:
        where = resources[0] if resources else None
        raise ConfigError(
            "no Sidecar object: meshlet sidecar needs one to know which ports to serve",
            location=where.location if where is not None else None,
        )
    policies = []
    for resource in resources:
        if resource.kind == "PeerAuthentication":
            policy = PeerAuthentication.from_resource(resource)
            _refuse_mesh_mtls(resource, policy)
            policies.append(policy)
    mesh = MeshSettings(enable_tls_on_sidecar_ingress=True)
    no_identity = PeerAuthentication(
        name=_NO_IDENTITY_POLICY,
        namespace=mesh.root_namespace,
        mtls_mode=MTLSMode.DISABLE,
        creation_timestamp=_OLDEST,
    )
    listeners: list[listener_pb2.Listener] = []
    clusters: dict[str, cluster_pb2.Cluster] = {}
    ports: dict[int, Resource] = {}
    node_id = ""
    workload_name = ""
    labels: tuple[tuple[str, str], ...] = ()
    for resource in sidecar_resources:
        sidecar = Sidecar.from_resource(resource)
        workload = Workload(
            name=sidecar.name,
            namespace=sidecar.namespace,
            ip=LOOPBACK,
            labels=dict(sidecar.workload_selector or {}),
            has_sidecar=True,
        )
        snapshot = Snapshot(
            sidecars=(sidecar,),
            workloads=(workload,),
            peer_authentications=(no_identity, *policies),
            mesh=mesh,
        )
        proxy = Proxy(workload=workload, sidecar=sidecar)
        if not node_id:
            node_id = proxy.id
            workload_name = workload.name
            labels = tuple(sorted(workload.labels.items()))
        plan = plan_inbound(proxy, snapshot)
        if not plan:
            raise _refuse("the Sidecar has no ingress port to serve", resource, ("spec",))
        inbound = build_inbound_listener(proxy, snapshot)
        indexes = {
            item.port.number: index
            for index, item in reversed(list(enumerate(sidecar.ingress)))
            if item is not None and item.port is not None
        }
        for chain in plan:
            path: tuple[str | int, ...] = ("spec", "ingress", indexes[chain.target_port])
            if chain.target_port in ports:
                raise _refuse(
                    f"ingress port {chain.target_port} is served by another Sidecar already",
                    resource,
                    path,
                )
            ports[chain.target_port] = resource
            if not chain.default_endpoint:
                raise _refuse(
                    f"ingress port {chain.target_port} has no defaultEndpoint: a standalone "
                    f"sidecar needs one to know where the app listens",
                    resource,
                    path,
                )
            chains = [c for c in inbound.filter_chains if c.name == chain.chain_name]
            listeners.append(
                _bound_listener(chain.chain_name, chain.bind, chain.target_port, chains)
            )
        for cluster in build_clusters(proxy, snapshot):
            clusters.setdefault(cluster.name, cluster)
    listeners.sort(key=lambda listener: listener.name)
    built_clusters = tuple(clusters[name] for name in sorted(clusters))
    problems = validate_resources(LISTENER_TYPE, listeners) + validate_resources(
        CLUSTER_TYPE, built_clusters
    )
    if problems:
        raise ConfigError("the proxy cannot serve this config: " + "; ".join(problems))
    return StandaloneConfig(node_id, tuple(listeners), built_clusters, workload_name, labels)
