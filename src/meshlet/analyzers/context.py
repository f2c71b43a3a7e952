"""What every analyzer reads: the typed objects of one analysis, where each came from,
and the mesh settings.

Theory of operation. ``build_context`` takes the decoded resources of the analysis
(files merged over the running cluster's objects, files winning) and returns a
frozen ``Context``:

- typed values (``meshlet.resources.k8s`` and ``meshlet.resources.istio``), each kept
  with the ``Resource`` it came from (``Sourced``), so an analyzer can name the file
  and line of any field;
- ``workloads``: each Deployment (its pod template stands for its pods) and each Pod
  that no Deployment of the analysis owns;
- a pilot ``Snapshot`` of those workloads (each as one sidecar-carrying pod), so the
  analyzers ask the control plane's own pure functions which Sidecar scopes a
  workload, which mTLS mode a port has, and — through the builders and the
  simulator — what a call to that port meets;
- ``live``: whether a running cluster's objects are part of the analysis. Then every
  Secret and Namespace of the cluster is known; from files alone, only those the
  files declare.

An object read from the cluster has no file: its document's file name is empty, and
``location`` gives ``None`` for it. A resource that cannot be modelled (its own
schema or validation errors are reported as IST0106) is left out of the context.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from meshlet.errors import ConfigError, Location, ObjectRef
from meshlet.pilot.snapshot import Proxy, Snapshot, Workload, build_snapshot
from meshlet.resources.istio import PeerAuthentication, Sidecar
from meshlet.resources.k8s import Deployment, Namespace, Pod, PodSpec, Service
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.objects import Resource
from meshlet.resources.yamlsource import Path

__all__ = [
    "CLUSTER_FILE",
    "Context",
    "Sourced",
    "WorkloadSource",
    "build_context",
    "format_labels",
    "selects",
]

CLUSTER_FILE = ""  # the file name of a document read from the running cluster
_PLACEHOLDER_IP = "10.255.255.254"  # what a simulated workload is reached at

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sourced(Generic[T]):
    """A typed value and the resource it was read from."""

    value: T
    resource: Resource


@dataclass(frozen=True, slots=True)
class WorkloadSource:
    """Pods that share one template: a Deployment's, or a single Pod's.

    ``annotations_path`` is where the pod template's annotations sit in the resource.
    ``running_proxy`` is known for a Pod read from a running cluster (whether it has an
    ``istio-proxy`` container) and None for a template.
    """

    kind: str
    name: str
    namespace: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: PodSpec
    resource: Resource
    annotations_path: Path
    running_proxy: bool | None = None

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.kind, self.name, self.namespace)

    def as_pod(self) -> dict[str, Any]:
        """The pod this template makes, as the injector reads it."""
        template = self.resource.body
        if self.kind == "Deployment":
            template = self.resource.spec.get("template") or {}
        spec = template.get("spec") or {}
        return {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": dict(self.labels),
                "annotations": dict(self.annotations),
            },
            "spec": dict(spec),
        }


@dataclass(frozen=True, slots=True)
class Context:
    """The objects of one analysis (see the module docstring)."""

    mesh: MeshSettings = field(default_factory=MeshSettings)
    live: bool = False
    namespaces: Mapping[str, Sourced[Namespace]] = field(default_factory=dict)
    services: tuple[Sourced[Service], ...] = ()
    workloads: tuple[WorkloadSource, ...] = ()
    sidecars: tuple[Sourced[Sidecar], ...] = ()
    peer_authentications: tuple[Sourced[PeerAuthentication], ...] = ()
    secrets: frozenset[tuple[str, str]] = frozenset()
    snapshot: Snapshot = field(default_factory=Snapshot)

    @staticmethod
    def location(resource: Resource, path: Path = ()) -> Location | None:
        """The file and line of a field, or None for an object of the running cluster."""
        if resource.document.location.file == CLUSTER_FILE:
            return None
        return resource.location_of(path)

    def where(self, resource: Resource, path: Path = ()) -> str:
        """``Kind namespace/name (file:line)`` for a message's text."""
        location = self.location(resource, path)
        return f"{resource.ref}" + (f" ({location})" if location is not None else "")

    def secrets_known(self, namespace: str) -> bool:
        """Whether the analysis knows every Secret of ``namespace``.

        In a running cluster it does. From files alone it knows them only when the
        files declare Secrets in that namespace; otherwise they are most likely made
        by command (``create secret tls …``) and a missing one cannot be told apart.
        """
        return self.live or any(ns == namespace for ns, _ in self.secrets)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The labels of a namespace the analysis knows, or None."""
        known = self.namespaces.get(namespace)
        return known.value.labels if known is not None else None

    def workloads_in(self, namespace: str) -> list[WorkloadSource]:
        return [w for w in self.workloads if w.namespace == namespace]

    def selected(self, namespace: str, selector: Mapping[str, str]) -> list[WorkloadSource]:
        """The workloads of ``namespace`` whose labels ``selector`` picks (``{}`` picks all)."""
        return [w for w in self.workloads_in(namespace) if selects(selector, w.labels)]

    def mesh_workload(self, workload: WorkloadSource) -> Workload:
        """The snapshot's view of a workload."""
        found = self.snapshot.workload(workload.namespace, _snapshot_name(workload))
        if found is None:  # every workload of the context is in its snapshot
            raise ValueError(f"{workload.ref} is not in the snapshot")
        return found

    def proxy_for(self, workload: Workload) -> Proxy:
        return Proxy(workload=workload, sidecar=self.snapshot.sidecar_scope(workload))

    def hypothetical_workload(self, namespace: str, labels: Mapping[str, str]) -> Workload:
        """A workload that has exactly ``labels``: what a selector's pods at least carry."""
        return Workload(
            name="",
            namespace=namespace,
            ip=_PLACEHOLDER_IP,
            labels=dict(sorted(labels.items())),
            has_sidecar=True,
        )


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a ``matchLabels`` selector picks an object with ``labels``."""
    return all(labels.get(key) == value for key, value in selector.items())


def format_labels(labels: Mapping[str, str]) -> str:
    """``app=httpbin,version=v1``: a label set as Kubernetes prints a selector."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _snapshot_name(workload: WorkloadSource) -> str:
    return f"{workload.kind.lower()}/{workload.name}"


def _owned_by_deployment(pod: Resource, deployments: Sequence[Deployment]) -> bool:
    owners = pod.metadata.get("ownerReferences") or []
    labels = pod.labels
    for owner in owners if isinstance(owners, list) else []:
        if not isinstance(owner, Mapping) or owner.get("kind") != "ReplicaSet":
            continue
        name = str(owner.get("name") or "")
        for deployment in deployments:
            if (
                deployment.namespace == (pod.namespace or "default")
                and name.startswith(f"{deployment.name}-")
                and selects(deployment.match_labels, labels)
            ):
                return True
    return False


def build_context(
    resources: Iterable[Resource], mesh: MeshSettings, *, live: bool = False
) -> Context:
    """The context of an analysis of ``resources`` (already merged, files winning)."""
    namespaces: dict[str, Sourced[Namespace]] = {}
    services: list[Sourced[Service]] = []
    deployments: list[Sourced[Deployment]] = []
    pods: list[Resource] = []
    sidecars: list[Sourced[Sidecar]] = []
    policies: list[Sourced[PeerAuthentication]] = []
    secrets: set[tuple[str, str]] = set()
    for resource in resources:
        group, kind = resource.info.group, resource.kind
        try:
            if group == "" and kind == "Namespace":
                namespaces[resource.name] = Sourced(Namespace.from_resource(resource), resource)
            elif group == "" and kind == "Service":
                services.append(Sourced(Service.from_resource(resource), resource))
            elif group == "apps" and kind == "Deployment":
                deployments.append(Sourced(Deployment.from_resource(resource), resource))
            elif group == "" and kind == "Pod":
                pods.append(resource)
            elif group == "" and kind == "Secret":
                secrets.add((resource.namespace or "default", resource.name))
            elif group == "networking.istio.io" and kind == "Sidecar":
                sidecars.append(Sourced(Sidecar.from_resource(resource), resource))
            elif group == "security.istio.io" and kind == "PeerAuthentication":
                policies.append(Sourced(PeerAuthentication.from_resource(resource), resource))
        except (ConfigError, ValueError, TypeError):
            continue  # reported by validation; nothing here can be modelled

    workloads: list[WorkloadSource] = []
    for deployment in deployments:
        value = deployment.value
        workloads.append(
            WorkloadSource(
                kind="Deployment",
                name=value.name,
                namespace=value.namespace,
                labels=value.template.labels,
                annotations=value.template.annotations,
                spec=value.template.spec,
                resource=deployment.resource,
                annotations_path=("spec", "template", "metadata", "annotations"),
            )
        )
    for resource in pods:
        if _owned_by_deployment(resource, [d.value for d in deployments]):
            continue
        pod = Pod.from_resource(resource)
        in_cluster = resource.document.location.file == CLUSTER_FILE
        workloads.append(
            WorkloadSource(
                kind="Pod",
                name=pod.name,
                namespace=pod.namespace,
                labels=pod.labels,
                annotations=pod.annotations,
                spec=pod.spec,
                resource=resource,
                annotations_path=("metadata", "annotations"),
                running_proxy=(
                    any(c.name == "istio-proxy" for c in pod.spec.containers)
                    if in_cluster
                    else None
                ),
            )
        )
    workloads.sort(key=lambda w: (w.namespace, w.kind, w.name))

    # Every workload as one running pod with a sidecar: what pilot would see for it.
    snapshot_pods = [
        Pod(_snapshot_name(w), w.namespace, w.labels, w.annotations, w.spec) for w in workloads
    ]
    snapshot = build_snapshot(
        services=[s.value for s in services],
        pods=snapshot_pods,
        sidecars=[s.value for s in sidecars],
        peer_authentications=[p.value for p in policies],
        mesh=mesh,
        pod_ips={(p.namespace, p.name): _PLACEHOLDER_IP for p in snapshot_pods},
        pods_with_sidecar=[(p.namespace, p.name) for p in snapshot_pods],
    )
    return Context(
        mesh=mesh,
        live=live,
        namespaces=dict(sorted(namespaces.items())),
        services=tuple(sorted(services, key=lambda s: (s.value.namespace, s.value.name))),
        workloads=tuple(workloads),
        sidecars=tuple(sorted(sidecars, key=lambda s: (s.value.namespace, s.value.name))),
        peer_authentications=tuple(
            sorted(policies, key=lambda p: (p.value.namespace, p.value.name))
        ),
        secrets=frozenset(secrets),
        snapshot=snapshot,
    )
