"""Per-proxy xDS config as versioned bytes, and what a snapshot change touches.

Theory of operation
-------------------
The ADS server sends what the pilot builders return; this module turns that into the
form a server needs:

- ``TypeResources`` holds one xDS type of one proxy: each resource's serialized bytes
  (deterministic protobuf encoding) and a short digest of them. The *version* of a set
  of resources is a hash over their names and digests: the same resources always give
  the same version, so a proxy that reconnects to a restarted server with unchanged
  config sees the same version string, and any change gives a new one.
- ``ProxyConfig`` holds the four types (CDS, LDS, RDS, EDS) of one proxy.
  ``build_proxy_config(proxy, snapshot)`` builds them (see below).
- Identical bytes are shared between proxies through an ``Interner`` (most outbound
  clusters and load assignments are the same for every proxy of a mesh), so the
  server's memory grows with the distinct config, not with the number of proxies times the config.

Building is shared between proxies (as Istio's caches do). Most of a sidecar's config
is its outbound side, and that depends on few things about the proxy: which Services
it sees (its Sidecar's egress scope), its namespace (a Service's bare name is a route
domain only there), ``REGISTRY_ONLY``, and which DestinationRule applies. A
``BuildCache`` holds, for one snapshot:

- *pieces*, per Service: its ``virtualOutbound`` filter chains, its virtual hosts (for
  clients in and out of its namespace), its outbound clusters (per DestinationRule
  that applies) and its load assignments, each built once and kept as encoded bytes;
- *views*, per kind of proxy: the ``virtualOutbound`` listener and the outbound route
  configurations, spliced from the pieces' bytes (a repeated field's encoding is the
  concatenation of its elements' records, see ``pilot._xds.splice_repeated``), and
  the outbound clusters and load assignments as ready ``TypeResources``.

A proxy's config is then its own inbound side (``virtualInbound`` and its inbound
clusters, built for it) joined to the views it belongs to. ``BuildCache.advance``
makes the cache of the next snapshot: when policy (Sidecars, PeerAuthentications,
DestinationRules, mesh settings) is unchanged, it keeps every piece whose Service did
not change in a way that piece depends on, and keeps the listener and route views
whole when no Service was added, removed or given another VIP or ports. Only the
pieces of changed Services are built again; views are re-spliced from the pieces.

``snapshot_impact`` compares the old and new snapshot and says what changed:
everything (``full``) when policy changed; otherwise the Services and workloads that
differ. ``update_proxy_config`` rebuilds a proxy's inbound side only when its own
workload changed or a changed Service selects it (or on a full change), and otherwise
joins its previous inbound side to the new snapshot's views. Tests check that every
path gives exactly the bytes the pilot builders give for the whole proxy.

Pure: snapshots and protos in, bytes and versions out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from meshlet.pilot import _xds
from meshlet.pilot._outbound import visible_services
from meshlet.pilot.clusters import (
    build_fixed_clusters,
    build_inbound_clusters,
    build_outbound_clusters,
    destination_rule_for,
)
from meshlet.pilot.endpoints import build_load_assignments
from meshlet.pilot.listeners import (
    OutboundChainKey,
    build_inbound_listener,
    outbound_listener_frame,
    outbound_service_chains,
)
from meshlet.pilot.routes import (
    catch_all_virtual_host,
    outbound_route_config_frame,
    outbound_virtual_hosts,
    registry_only,
)
from meshlet.pilot.snapshot import MeshService, Proxy, Snapshot
from meshlet.proxy.config import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from meshlet.resources.istio import DestinationRule

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "TYPE_ORDER",
    "BuildCache",
    "Impact",
    "Interner",
    "NodeRef",
    "Piece",
    "ProxyConfig",
    "TypeResources",
    "build_proxy_config",
    "encode_response",
    "parse_node_id",
    "proxy_for_node",
    "short_type",
    "snapshot_impact",
    "update_proxy_config",
]

#: The order a push sends types in, as Envoy's xDS guidance asks (make before break):
#: clusters, their load assignments, then listeners and their route configurations.
TYPE_ORDER = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)

_SHORT = {CLUSTER_TYPE: "CDS", LISTENER_TYPE: "LDS", ENDPOINT_TYPE: "EDS", ROUTE_TYPE: "RDS"}

#: Types sent as the whole state of the world on each change (Envoy's wildcard types);
#: for the others a response carries only requested resources that changed.
WILDCARD_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE})


def short_type(type_url: str) -> str:
    """``CDS``, ``LDS``, ``EDS``, ``RDS`` for Envoy's type URLs; the URL's tail otherwise."""
    return _SHORT.get(type_url, type_url.rsplit("/", 1)[-1])


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class Interner:
    """Shares equal resource bytes between proxies (keyed by their digest), and their
    encoding as an element of a ``DiscoveryResponse``."""

    __slots__ = ("_records", "_table")

    def __init__(self) -> None:
        self._table: dict[bytes, bytes] = {}
        self._records: dict[str, dict[bytes, bytes]] = {}

    def records(self, type_url: str) -> Mapping[bytes, bytes]:
        """The records made so far for resources of ``type_url``, by digest."""
        return self._records.setdefault(type_url, {})

    def record(self, type_url: str, digest: bytes, data: bytes) -> bytes:
        """The ``resources`` record of a response for a resource (an ``Any`` of
        ``type_url``), made once per distinct resource."""
        known = self._records.setdefault(type_url, {})
        found = known.get(digest)
        if found is None:
            packed = any_pb2.Any(type_url=type_url, value=data).SerializeToString(
                deterministic=True
            )
            found = known[digest] = _xds.encode_embedded(_RESOURCES_FIELD, packed)
        return found

    def intern(self, data: bytes) -> tuple[bytes, bytes]:
        """``(digest, data)`` where ``data`` is the one shared copy of those bytes."""
        digest = _digest(data)
        shared = self._table.setdefault(digest, data)
        return digest, shared

    def __len__(self) -> int:
        return len(self._table)


_MASK = (1 << 64) - 1


def _weight(name: str, digest: bytes) -> int:
    """One resource's share of a version: a 64-bit hash of its name and digest."""
    return int.from_bytes(hashlib.blake2b(name.encode() + b"\0" + digest, digest_size=8).digest())


def _version(total: int, count: int) -> str:
    """A version from the sum of the resources' weights (order-free, so it can be updated
    by adding and removing single resources) and their number."""
    return f"{(total + count * 0x9E3779B97F4A7C15) & _MASK:016x}"


_RESOURCES_FIELD = discovery_pb2.DiscoveryResponse.DESCRIPTOR.fields_by_name["resources"].number


def encode_response(
    type_url: str,
    version: str,
    resources: TypeResources,
    names: Iterable[str],
    interner: Interner,
) -> discovery_pb2.DiscoveryResponse:
    """A ``DiscoveryResponse`` (no nonce yet) of the named resources, in that order.

    Parsed from records kept per distinct resource instead of built from one ``Any``
    per resource: the same message, made several times faster for a proxy's thousands
    of clusters.
    """
    frame = discovery_pb2.DiscoveryResponse(version_info=version, type_url=type_url)
    known = interner.records(type_url)
    digests, data = resources.digests, resources.data
    records = []
    for name in names:
        digest = digests[name]
        record = known.get(digest)
        records.append(
            record if record is not None else interner.record(type_url, digest, data[name])
        )
    encoded = _xds.splice_repeated(frame, "resources", records)
    return discovery_pb2.DiscoveryResponse.FromString(encoded)


@dataclass(frozen=True, slots=True)
class Piece:
    """One resource as a server keeps it: its name, encoded bytes, digest and weight."""

    name: str
    data: bytes
    digest: bytes
    weight: int

    @classmethod
    def of(cls, name: str, data: bytes, interner: Interner) -> Piece:
        digest, shared = interner.intern(data)
        return cls(name, shared, digest, _weight(name, digest))

    @classmethod
    def of_message(cls, message: Message, interner: Interner) -> Piece:
        return cls.of(_name(message), message.SerializeToString(deterministic=True), interner)


@dataclass(frozen=True, slots=True)
class TypeResources:
    """One xDS type of one proxy: resource bytes, digests and version weights by name.

    The version of a set of resources is made from the sum of per-resource weights (a
    hash of name and bytes each), so replacing a few resources costs only those few.
    ``names()`` are sorted; ``data`` keeps no particular order.
    """

    type_url: str
    data: Mapping[str, bytes] = field(default_factory=dict)
    digests: Mapping[str, bytes] = field(default_factory=dict)
    weights: Mapping[str, int] = field(default_factory=dict)
    total: int = 0

    @classmethod
    def from_messages(
        cls,
        type_url: str,
        messages: Iterable[Message],
        interner: Interner | None = None,
    ) -> TypeResources:
        table = interner if interner is not None else Interner()
        data: dict[str, bytes] = {}
        digests: dict[str, bytes] = {}
        weights: dict[str, int] = {}
        for message in messages:
            name = _name(message)
            digest, shared = table.intern(message.SerializeToString(deterministic=True))
            data[name], digests[name], weights[name] = shared, digest, _weight(name, digest)
        return cls(type_url, data, digests, weights, sum(weights.values()) & _MASK)

    @classmethod
    def from_pieces(cls, type_url: str, pieces: Iterable[Piece]) -> TypeResources:
        """The resources of ``pieces`` (a later piece wins on a name)."""
        return cls(type_url).with_pieces(pieces)

    def with_pieces(self, pieces: Iterable[Piece]) -> TypeResources:
        """These resources and ``pieces`` (which win on a name)."""
        data, digests, weights = dict(self.data), dict(self.digests), dict(self.weights)
        total = self.total
        for piece in pieces:
            name = piece.name
            if name in weights:
                total -= weights[name]
            data[name], digests[name], weights[name] = piece.data, piece.digest, piece.weight
            total += piece.weight
        return TypeResources(self.type_url, data, digests, weights, total & _MASK)

    @property
    def version(self) -> str:
        return _version(self.total, len(self.weights))

    def replace_named(self, removed: Iterable[str], added: TypeResources) -> TypeResources:
        """These resources without ``removed``, with ``added`` (which wins on a name)."""
        data, digests, weights = dict(self.data), dict(self.digests), dict(self.weights)
        total = self.total
        for name in (*removed, *added.data):
            if name in weights:
                total -= weights.pop(name)
                del data[name], digests[name]
        data.update(added.data)
        digests.update(added.digests)
        weights.update(added.weights)
        total += added.total
        return TypeResources(self.type_url, data, digests, weights, total & _MASK)

    def version_of(self, names: Iterable[str] | None = None) -> str:
        """The version of the whole set, or of the named resources that exist."""
        if names is None:
            return self.version
        wanted = names if isinstance(names, (set, frozenset)) else set(names)
        present = wanted & self.weights.keys()
        if len(present) == len(self.weights):
            return self.version
        weights = self.weights
        return _version(sum(weights[name] for name in present) & _MASK, len(present))

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.data))


def _name(message: Message) -> str:
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return str(message.cluster_name)
    return str(getattr(message, "name", ""))


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The four xDS types of one proxy, as built from one snapshot."""

    node_id: str
    clusters: TypeResources
    listeners: TypeResources
    endpoints: TypeResources
    routes: TypeResources
    #: The proxy's own resources (``virtualInbound``, inbound clusters); the rest of its
    #: config comes from the views of a ``BuildCache``.
    local_listeners: tuple[Piece, ...] = ()
    local_clusters: tuple[Piece, ...] = ()

    def of(self, type_url: str) -> TypeResources | None:
        return {
            CLUSTER_TYPE: self.clusters,
            LISTENER_TYPE: self.listeners,
            ENDPOINT_TYPE: self.endpoints,
            ROUTE_TYPE: self.routes,
        }.get(type_url)


# --- shared building --------------------------------------------------------------------

_CHAIN_FIELD = listener_pb2.Listener.DESCRIPTOR.fields_by_name["filter_chains"].number
_VHOST_FIELD = route_pb2.RouteConfiguration.DESCRIPTOR.fields_by_name["virtual_hosts"].number

_ScopeKey = Hashable  # which Services a proxy sees (its Sidecar's egress scope)
_RuleScope = Hashable  # what decides which DestinationRule applies to a proxy
_RuleRef = tuple[str, str] | None  # the DestinationRule that applies, by namespace and name


def _policy(snapshot: Snapshot) -> tuple[object, ...]:
    return (
        snapshot.sidecars,
        snapshot.peer_authentications,
        snapshot.destination_rules,
        snapshot.mesh,
    )


def _shape(snapshot: Snapshot) -> tuple[object, ...]:
    """What the listener and route views read of the Services: names, VIPs and ports."""
    return tuple((s.hostname, s.vip, s.ports) for s in snapshot.services)


def _scope_key(proxy: Proxy) -> _ScopeKey:
    """Proxies with equal keys see the same Services (``visible_services``)."""
    sidecar = proxy.sidecar
    if sidecar is None or all(item is None for item in sidecar.egress):
        return None
    return (sidecar.namespace, sidecar.name, proxy.namespace)


def _rule_scope(proxy: Proxy, snapshot: Snapshot) -> _RuleScope:
    """Proxies with equal keys get the same ``destination_rule_for`` every Service: it
    reads the proxy's namespace and which rules there select the proxy's workload."""
    if not snapshot.destination_rules:
        return None
    labels = proxy.workload.labels
    selecting = tuple(
        rule.name
        for rule in snapshot.destination_rules
        if rule.namespace == proxy.namespace
        and rule.workload_selector is not None
        and all(labels.get(k) == v for k, v in rule.workload_selector.items())
    )
    return (proxy.namespace, selecting)


_K = TypeVar("_K")
_V = TypeVar("_V")


def _reuse(
    current: dict[_K, tuple[object, _V]],
    carried: dict[_K, tuple[object, _V]],
    key: _K,
    source: object,
) -> _V | None:
    """A piece of this snapshot, or one of the previous snapshot built from an equal
    ``source`` (then kept for this one)."""
    entry = current.get(key)
    if entry is not None:
        return entry[1]
    old = carried.get(key)
    if old is not None and (old[0] is source or old[0] == source):
        current[key] = old
        return old[1]
    return None


@dataclass(slots=True)
class _Pieces:
    """Per-Service pieces, each kept with the value it was built from (checked on reuse)."""

    chains: dict[str, tuple[object, list[tuple[OutboundChainKey, bytes]]]] = field(
        default_factory=dict
    )
    hosts: dict[tuple[str, bool], tuple[object, dict[int, tuple[str, bytes]]]] = field(
        default_factory=dict
    )
    clusters: dict[tuple[str, _RuleRef], tuple[object, tuple[Piece, ...]]] = field(
        default_factory=dict
    )
    assignments: dict[str, tuple[object, tuple[Piece, ...]]] = field(default_factory=dict)


class BuildCache:
    """Outbound config of one snapshot, built once per Service and per view of proxies.

    Memo tables filled as proxies are built (see the module docstring); what they hold
    is a function of the snapshot, so the order proxies are built in does not matter.
    ``advance`` gives the cache of the next snapshot.
    """

    __slots__ = (
        "_carried",
        "_cluster_views",
        "_endpoint_views",
        "_fixed",
        "_listener_views",
        "_pieces",
        "_policy",
        "_route_views",
        "_rules",
        "_shape",
        "_visible",
        "interner",
        "snapshot",
    )

    def __init__(self, snapshot: Snapshot, interner: Interner | None = None) -> None:
        self.snapshot = snapshot
        self.interner = interner if interner is not None else Interner()
        self._policy = _policy(snapshot)
        self._shape: tuple[object, ...] | None = None
        self._pieces = _Pieces()
        self._carried = _Pieces()  # the previous snapshot's, while policy is unchanged
        self._fixed: tuple[Piece, ...] | None = None
        self._visible: dict[_ScopeKey, tuple[MeshService, ...]] = {}
        self._rules: dict[tuple[_RuleScope, str], DestinationRule | None] = {}
        self._listener_views: dict[tuple[_ScopeKey, bool], Piece] = {}
        self._route_views: dict[tuple[_ScopeKey, str, bool], TypeResources] = {}
        self._cluster_views: dict[tuple[_ScopeKey, _RuleScope], TypeResources] = {}
        self._endpoint_views: dict[_ScopeKey, TypeResources] = {}

    def advance(self, snapshot: Snapshot, interner: Interner | None = None) -> BuildCache:
        """The cache of ``snapshot``, keeping what of this one is still valid for it."""
        cache = BuildCache(snapshot, interner if interner is not None else self.interner)
        if cache._policy != self._policy:
            return cache  # policy shapes every piece: start again
        cache._carried = self._pieces
        cache._fixed = self._fixed
        if (self._listener_views or self._route_views) and self._shape_of() == cache._shape_of():
            cache._listener_views = dict(self._listener_views)
            cache._route_views = dict(self._route_views)
        return cache

    def _shape_of(self) -> tuple[object, ...]:
        if self._shape is None:
            self._shape = _shape(self.snapshot)
        return self._shape

    # --- pieces ------------------------------------------------------------------------

    def _chains(self, service: MeshService) -> list[tuple[OutboundChainKey, bytes]]:
        source = (service.vip, service.ports)
        found = _reuse(self._pieces.chains, self._carried.chains, service.hostname, source)
        if found is not None:
            return found
        built = [
            (key, _xds.encode_embedded(_CHAIN_FIELD, chain.SerializeToString(deterministic=True)))
            for key, chain in outbound_service_chains(service)
        ]
        self._pieces.chains[service.hostname] = (source, built)
        return built

    def _hosts(self, service: MeshService, client_namespace: str) -> dict[int, tuple[str, bytes]]:
        same = service.namespace == client_namespace
        source = (service.vip, service.ports)
        key = (service.hostname, same)
        found = _reuse(self._pieces.hosts, self._carried.hosts, key, source)
        if found is not None:
            return found
        built = {
            port: (
                host.name,
                _xds.encode_embedded(_VHOST_FIELD, host.SerializeToString(deterministic=True)),
            )
            for port, host in outbound_virtual_hosts(service, client_namespace).items()
        }
        self._pieces.hosts[key] = (source, built)
        return built

    def _rule(self, proxy: Proxy, scope: _RuleScope, service: MeshService) -> _RuleRef:
        key = (scope, service.hostname)
        if key not in self._rules:
            self._rules[key] = (
                None if scope is None else destination_rule_for(proxy, service, self.snapshot)
            )
        rule = self._rules[key]
        return None if rule is None else (rule.namespace, rule.name)

    def _clusters(self, proxy: Proxy, scope: _RuleScope, service: MeshService) -> tuple[Piece, ...]:
        ref = self._rule(proxy, scope, service)
        key = (service.hostname, ref)
        found = _reuse(self._pieces.clusters, self._carried.clusters, key, service)
        if found is not None:
            return found
        rule = self._rules[(scope, service.hostname)]
        built = tuple(
            Piece.of_message(cluster, self.interner)
            for cluster in build_outbound_clusters(service, rule, self.snapshot)
        )
        self._pieces.clusters[key] = (service, built)
        return built

    def _assignments(self, service: MeshService) -> tuple[Piece, ...]:
        source = (service.ports, service.endpoints)
        found = _reuse(
            self._pieces.assignments,
            self._carried.assignments,
            service.hostname,
            source,
        )
        if found is not None:
            return found
        built = tuple(
            Piece.of_message(assignment, self.interner)
            for assignment in build_load_assignments(service)
        )
        self._pieces.assignments[service.hostname] = (source, built)
        return built

    # --- views -------------------------------------------------------------------------

    def _visible_to(self, proxy: Proxy, scope: _ScopeKey) -> tuple[MeshService, ...]:
        if scope not in self._visible:
            self._visible[scope] = visible_services(proxy, self.snapshot)
        return self._visible[scope]

    def outbound_listener(self, proxy: Proxy) -> Piece:
        """``virtualOutbound`` for ``proxy``, shared by every proxy of its view."""
        scope = _scope_key(proxy)
        key = (scope, registry_only(proxy))
        view = self._listener_views.get(key)
        if view is None:
            entries = [
                entry
                for service in self._visible_to(proxy, scope)
                for entry in self._chains(service)
            ]
            entries.sort(key=lambda entry: entry[0])
            frame, tail = outbound_listener_frame(proxy)
            records = [record for _, record in entries]
            records.extend(
                _xds.encode_embedded(_CHAIN_FIELD, chain.SerializeToString(deterministic=True))
                for chain in tail
            )
            data = _xds.splice_repeated(frame, "filter_chains", records)
            view = self._listener_views[key] = Piece.of(frame.name, data, self.interner)
        return view

    def outbound_routes(self, proxy: Proxy) -> TypeResources:
        """The outbound route configurations of ``proxy``, shared by its view."""
        scope = _scope_key(proxy)
        key = (scope, proxy.namespace, registry_only(proxy))
        view = self._route_views.get(key)
        if view is None:
            by_port: dict[int, list[tuple[str, bytes]]] = {}
            for service in self._visible_to(proxy, scope):
                for port, host in self._hosts(service, proxy.namespace).items():
                    by_port.setdefault(port, []).append(host)
            catch_all = catch_all_virtual_host(proxy).SerializeToString(deterministic=True)
            last = _xds.encode_embedded(_VHOST_FIELD, catch_all)
            pieces = []
            for port, hosts in by_port.items():
                hosts.sort(key=lambda host: host[0])
                frame = outbound_route_config_frame(port)
                records = [record for _, record in hosts]
                records.append(last)
                data = _xds.splice_repeated(frame, "virtual_hosts", records)
                pieces.append(Piece.of(frame.name, data, self.interner))
            view = self._route_views[key] = TypeResources.from_pieces(ROUTE_TYPE, pieces)
        return view

    def outbound_clusters(self, proxy: Proxy) -> TypeResources:
        """The built-in and outbound clusters of ``proxy``, shared by its view."""
        scope = _scope_key(proxy)
        rules = _rule_scope(proxy, self.snapshot)
        view = self._cluster_views.get((scope, rules))
        if view is None:
            if self._fixed is None:
                self._fixed = tuple(
                    Piece.of_message(cluster, self.interner) for cluster in build_fixed_clusters()
                )
            pieces = list(self._fixed)
            for service in self._visible_to(proxy, scope):
                pieces.extend(self._clusters(proxy, rules, service))
            view = TypeResources.from_pieces(CLUSTER_TYPE, pieces)
            self._cluster_views[(scope, rules)] = view
        return view

    def endpoints(self, proxy: Proxy) -> TypeResources:
        """The load assignments of ``proxy``, shared by its view."""
        scope = _scope_key(proxy)
        view = self._endpoint_views.get(scope)
        if view is None:
            pieces = [
                piece
                for service in self._visible_to(proxy, scope)
                for piece in self._assignments(service)
            ]
            view = self._endpoint_views[scope] = TypeResources.from_pieces(ENDPOINT_TYPE, pieces)
        return view

    # --- a proxy -----------------------------------------------------------------------

    def local_pieces(
        self, proxy: Proxy, interner: Interner | None = None
    ) -> tuple[tuple[Piece, ...], tuple[Piece, ...]]:
        """The proxy's own listeners and clusters: ``virtualInbound``, inbound clusters."""
        table = interner if interner is not None else self.interner
        listener = Piece.of_message(build_inbound_listener(proxy, self.snapshot), table)
        clusters = tuple(
            Piece.of_message(cluster, table)
            for cluster in build_inbound_clusters(proxy, self.snapshot)
        )
        return (listener,), clusters

    def assemble(
        self,
        proxy: Proxy,
        local_listeners: tuple[Piece, ...],
        local_clusters: tuple[Piece, ...],
    ) -> ProxyConfig:
        """The proxy's config: its own pieces joined to its views."""
        listeners = TypeResources.from_pieces(
            LISTENER_TYPE, (*local_listeners, self.outbound_listener(proxy))
        )
        return ProxyConfig(
            node_id=proxy.id,
            clusters=self.outbound_clusters(proxy).with_pieces(local_clusters),
            listeners=listeners,
            endpoints=self.endpoints(proxy),
            routes=self.outbound_routes(proxy),
            local_listeners=local_listeners,
            local_clusters=local_clusters,
        )


def _cache_for(
    cache: BuildCache | None, snapshot: Snapshot, interner: Interner | None
) -> BuildCache:
    if cache is None:
        return BuildCache(snapshot, interner)
    if cache.snapshot is not snapshot:
        raise ValueError("the build cache is of another snapshot")
    return cache


def build_proxy_config(
    proxy: Proxy,
    snapshot: Snapshot,
    interner: Interner | None = None,
    *,
    cache: BuildCache | None = None,
) -> ProxyConfig:
    """The proxy's whole config: the bytes of the pilot builders (``build_clusters``,
    ``build_listeners``, ``build_endpoints``, ``build_routes``), its outbound side shared
    through ``cache`` (of ``snapshot``) with the other proxies built from it."""
    shared = _cache_for(cache, snapshot, interner)
    local_listeners, local_clusters = shared.local_pieces(proxy, interner)
    return shared.assemble(proxy, local_listeners, local_clusters)


# --- node ids ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeRef:
    """What an Istio node id says: ``sidecar~IP~POD.NS~NS.svc.cluster.local``."""

    kind: str
    ip: str
    pod: str
    namespace: str

    @property
    def name(self) -> str:
        """``POD.NS``, the name ``proxy-status`` shows."""
        return f"{self.pod}.{self.namespace}"


def parse_node_id(node_id: str) -> NodeRef | None:
    """The parts of a node id, or None when it is not of Istio's form."""
    parts = node_id.split("~")
    if len(parts) != 4 or not all(parts[:3]):
        return None
    kind, ip, pod_ns, _domain = parts
    pod, sep, namespace = pod_ns.rpartition(".")
    if not sep or not pod or not namespace:
        return None
    return NodeRef(kind=kind, ip=ip, pod=pod, namespace=namespace)


def proxy_for_node(node_id: str, snapshot: Snapshot) -> Proxy | None:
    """The snapshot's proxy for a connected node, or None if the snapshot has no such pod."""
    ref = parse_node_id(node_id)
    if ref is None:
        return None
    workload = snapshot.workload(ref.namespace, ref.pod)
    if workload is None or not workload.has_sidecar:
        return None
    return Proxy(workload=workload, sidecar=snapshot.sidecar_scope(workload))


# --- what a snapshot change touches -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Impact:
    """What differs between two snapshots, as far as building config is concerned."""

    full: bool = False
    services: frozenset[str] = frozenset()  # hostnames
    shape: bool = False  # a Service added or removed, or its VIP or ports changed
    workloads: frozenset[tuple[str, str]] = frozenset()  # (namespace, name)
    changed_services: tuple[MeshService, ...] = ()  # old and new values of changed Services

    @property
    def empty(self) -> bool:
        return not (self.full or self.services or self.workloads)


def snapshot_impact(old: Snapshot | None, new: Snapshot) -> Impact:
    """What changed from ``old`` to ``new`` (everything, when there is no ``old``)."""
    if old is None:
        return Impact(full=True)
    if (
        old.sidecars != new.sidecars
        or old.peer_authentications != new.peer_authentications
        or old.destination_rules != new.destination_rules
        or old.mesh != new.mesh
    ):
        return Impact(full=True)
    before = {service.hostname: service for service in old.services}
    after = {service.hostname: service for service in new.services}
    changed: set[str] = set()
    shape = False
    for hostname in before.keys() | after.keys():
        a, b = before.get(hostname), after.get(hostname)
        if a == b:
            continue
        changed.add(hostname)
        if a is None or b is None or (a.vip, a.ports) != (b.vip, b.ports):
            shape = True
    old_workloads = {(w.namespace, w.name): w for w in old.workloads}
    new_workloads = {(w.namespace, w.name): w for w in new.workloads}
    workloads = {
        key
        for key in old_workloads.keys() | new_workloads.keys()
        if old_workloads.get(key) != new_workloads.get(key)
    }
    involved = [before[h] for h in sorted(changed) if h in before]
    involved += [after[h] for h in sorted(changed) if h in after]
    return Impact(
        services=frozenset(changed),
        shape=shape,
        workloads=frozenset(workloads),
        changed_services=tuple(involved),
    )


def _needs_full_rebuild(proxy: Proxy, impact: Impact) -> bool:
    workload = proxy.workload
    if (workload.namespace, workload.name) in impact.workloads:
        return True
    return any(service.selects(workload) for service in impact.changed_services)


def update_proxy_config(
    previous: ProxyConfig | None,
    proxy: Proxy,
    snapshot: Snapshot,
    impact: Impact,
    interner: Interner | None = None,
    *,
    cache: BuildCache | None = None,
) -> ProxyConfig:
    """The proxy's config for ``snapshot``, reusing ``previous`` where ``impact`` allows.

    The proxy's own pieces are kept unless its workload or a Service that selects it
    changed (or policy did); its outbound side always comes from ``cache`` (of
    ``snapshot``), where only the changed Services' pieces are built again.
    """
    if (
        previous is None
        or impact.full
        or not previous.local_listeners
        or _needs_full_rebuild(proxy, impact)
    ):
        return build_proxy_config(proxy, snapshot, interner, cache=cache)
    if impact.empty:
        return previous
    shared = _cache_for(cache, snapshot, interner)
    config = shared.assemble(proxy, previous.local_listeners, previous.local_clusters)
    if config.node_id != previous.node_id:
        config = replace(config, node_id=previous.node_id)
    return config
