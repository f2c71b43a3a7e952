"""The API's operations on the store, as the Kubernetes API server answers them.

Each operation runs on the daemon's event-loop thread (the store's only user), takes
the request's JSON arguments and returns a JSON value, or raises ``ApiError`` with
kubectl's line. Writes go through ``admission`` and then one store transaction, so
a refused request changes nothing.

- ``apply`` / ``create``: results ``{"kind", "group", "name", "namespace", "action",
  "warnings"}``; ``dry_run`` stores nothing.
- ``get``: the objects of a kind (``group/Kind``), in a namespace or all, by names or
  a label selector (``meshlet.kubectl.selectors``).
- ``delete``: deleting a Namespace deletes everything in it, a Deployment its pods
  (the garbage collector's cascade, done at once). Names that exist are deleted; a
  missing one gives a result with ``"status": "NotFound"`` and kubectl's line; the
  call fails only when none exists.
- ``label``: set or remove labels (``--overwrite`` as kubectl checks it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import IPv4Address
from typing import Any

from meshlet.cluster.protocol import ApiError
from meshlet.daemon.admission import Admitted, admit, kind_key
from meshlet.daemon.controllers.deployments import owned_pods
from meshlet.daemon.controllers.namespaces import contents_of
from meshlet.daemon.injection import InjectionSettings
from meshlet.errors import ExitCode
from meshlet.kubectl.messages import qualified_resource
from meshlet.kubectl.selectors import SelectorError, parse_selector
from meshlet.resources.kinds import KINDS, KindInfo
from meshlet.runtime.config import NodeConfig
from meshlet.runtime.ipam import IpAllocator, service_allocator
from meshlet.store import AlreadyExists, ApplyAction, ObjectKey, Store

__all__ = ["Api", "StoreView", "kind_info"]

PROTECTED_NAMESPACES = frozenset({"default", "istio-system"})


def kind_info(kind: str) -> KindInfo:
    """The kind named ``group/Kind`` (``/Pod``, ``apps/Deployment``)."""
    for info in KINDS:
        if kind_key(info) == kind:
            return info
    shown = kind.rsplit("/", maxsplit=1)[-1].lower() or kind
    raise ApiError("BadRequest", f'error: the server doesn\'t have a resource type "{shown}"')


class StoreView:
    """The store as admission reads it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get_body(self, key: ObjectKey) -> Mapping[str, Any] | None:
        found = self.store.get(key)
        return found.body if found is not None else None

    def list_bodies(self, kind: str, namespace: str | None = None) -> list[Mapping[str, Any]]:
        return [o.body for o in self.store.list_kind(kind, namespace)]


class Api:
    def __init__(
        self,
        store: Store,
        config: NodeConfig,
        *,
        injection: Callable[[], InjectionSettings],
        on_write: Callable[[], None],
        node_name: str = "meshlet",
    ) -> None:
        self.store = store
        self.view = StoreView(store)
        self.config = config
        self.injection = injection
        self.on_write = on_write
        self.node_name = node_name
        self.random = random.Random()

    def service_ips(self) -> IpAllocator:
        in_use: dict[IPv4Address, str] = {}
        for service in self.store.list_kind("/Service"):
            ip = (service.body.get("spec") or {}).get("clusterIP")
            try:
                address = IPv4Address(ip) if ip and ip != "None" else None
            except ValueError:
                address = None
            if address is not None and address in self.config.service_cidr:
                in_use[address] = f"{service.key.namespace}/{service.key.name}"
        return service_allocator(self.config, in_use)

    # -- writes ----------------------------------------------------------------------

    def admit(
        self,
        objects: Sequence[Mapping[str, Any]],
        namespace: str,
        sources: Sequence[Mapping[str, Any] | None] | None,
        *,
        create_only: bool,
    ) -> list[Admitted]:
        return admit(
            objects,
            namespace=namespace,
            view=self.view,
            service_ips=self.service_ips(),
            sources=sources,
            create_only=create_only,
            injection=self.injection(),
            node_name=self.node_name,
        )

    def apply(
        self,
        objects: Sequence[Mapping[str, Any]],
        namespace: str = "default",
        dry_run: bool = False,
        sources: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[dict[str, Any]]:
        admitted = self.admit(objects, namespace, sources, create_only=False)
        results = self.store.apply([(a.key, a.body) for a in admitted], dry_run=dry_run)
        if not dry_run:
            self.on_write()
        return [a.result(r.action.value) for a, r in zip(admitted, results, strict=True)]

    def create(
        self,
        objects: Sequence[Mapping[str, Any]],
        namespace: str = "default",
        dry_run: bool = False,
        sources: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[dict[str, Any]]:
        admitted = self.admit(objects, namespace, sources, create_only=True)
        if dry_run:
            return [a.result(ApplyAction.CREATED.value) for a in admitted]
        try:
            self.store.create([(a.key, a.body) for a in admitted])
        except AlreadyExists as error:
            raise ApiError(
                "AlreadyExists", f"Error from server (AlreadyExists): {error.message}"
            ) from None
        self.on_write()
        return [a.result(ApplyAction.CREATED.value) for a in admitted]

    # -- reads ---------------------------------------------------------------------------

    def get(
        self,
        kind: str,
        namespace: str | None = None,
        names: Sequence[str] = (),
        selector: str | None = None,
    ) -> list[dict[str, Any]]:
        info = kind_info(kind)
        ns = (namespace or "") if info.namespaced else ""
        if names:
            found = []
            for name in names:
                if info.namespaced and namespace is None:
                    matches = [o for o in self.store.list_kind(kind) if o.key.name == name]
                    stored = matches[0] if matches else None
                else:
                    stored = self.store.get(ObjectKey(kind, ns, name))
                if stored is None:
                    raise ApiError(
                        "NotFound",
                        f'Error from server (NotFound): {qualified_resource(info)} "{name}" not found',
                    )
                found.append(dict(stored.body))
            return found
        listed = self.store.list_kind(
            kind, ns if info.namespaced and namespace is not None else None
        )
        bodies = [dict(o.body) for o in listed]
        if selector:
            try:
                parsed = parse_selector(selector)
            except SelectorError as error:
                raise ApiError(
                    "BadRequest",
                    f'Error from server (BadRequest): Unable to find "{info.group}/{info.versions[0]}, '
                    f'Resource={info.plural}" that match label selector "{selector}", field '
                    f'selector "": {error}',
                ) from None
            bodies = [
                b for b in bodies if parsed.matches((b.get("metadata") or {}).get("labels") or {})
            ]
        return bodies

    def all_keys(self, namespace: str) -> list[ObjectKey]:
        keys: list[ObjectKey] = []
        for info in KINDS:
            if info.namespaced:
                keys += [o.key for o in self.store.list_kind(kind_key(info), namespace)]
        return keys

    def delete(
        self, kind: str, namespace: str | None = None, names: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        info = kind_info(kind)
        if not names:
            raise ApiError(
                "BadRequest", "error: resource(s) were provided, but no name was specified"
            )
        ns = (namespace or "default") if info.namespaced else ""
        results: list[dict[str, Any]] = []
        doomed: list[ObjectKey] = []
        for name in dict.fromkeys(names):
            key = ObjectKey(kind, ns, name)
            stored = self.store.get(key)
            if stored is None:
                results.append(
                    {
                        "kind": info.kind,
                        "group": info.group,
                        "name": name,
                        "namespace": ns or None,
                        "status": "NotFound",
                        "message": f'Error from server (NotFound): {qualified_resource(info)} "{name}" not found',
                    }
                )
                continue
            if kind == "/Namespace":
                doomed += [k for k in contents_of(name, self.all_keys(name)) if k not in doomed]
            elif kind == "apps/Deployment":
                pods = [o.body for o in self.store.list_kind("/Pod", ns)]
                doomed.append(key)
                for pod in owned_pods(stored.body, pods):
                    doomed.append(ObjectKey("/Pod", ns, str(pod["metadata"]["name"])))
            else:
                doomed.append(key)
            results.append(
                {
                    "kind": info.kind,
                    "group": info.group,
                    "name": name,
                    "namespace": ns or None,
                    "status": "Deleted",
                }
            )
        if not doomed:
            first = results[0]
            raise ApiError("NotFound", str(first["message"]), exit_code=ExitCode.NOT_FOUND)
        self.store.delete(list(dict.fromkeys(doomed)))
        self.on_write()
        return results

    def label(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        labels: Mapping[str, str | None],
        overwrite: bool = False,
    ) -> dict[str, Any]:
        info = kind_info(kind)
        ns = (namespace or "default") if info.namespaced else ""
        stored = self.store.get(ObjectKey(kind, ns, name))
        if stored is None:
            raise ApiError(
                "NotFound",
                f'Error from server (NotFound): {qualified_resource(info)} "{name}" not found',
            )
        body = dict(stored.body)
        metadata = dict(body.get("metadata") or {})
        current = dict(metadata.get("labels") or {})
        updated = dict(current)
        for key, value in labels.items():
            if value is None:
                updated.pop(key, None)
                continue
            if key in current and current[key] != value and not overwrite:
                raise ApiError(
                    "BadRequest",
                    f"error: '{key}' already has a value ({current[key]}), and --overwrite is false",
                )
            updated[key] = value
        result = {"kind": info.kind, "group": info.group, "name": name, "namespace": ns or None}
        if updated == current:
            return {**result, "action": "not labeled"}
        metadata["labels"] = updated
        body["metadata"] = metadata
        self.apply([body], namespace=ns or "default")
        return {**result, "action": "labeled"}

    # -- the controllers' writes -----------------------------------------------------------

    def create_pods(self, pods: Iterable[Mapping[str, Any]], namespace: str) -> list[str]:
        """Create pods for a controller (admission and injection included); the names
        created. A refused pod is skipped with its message returned."""
        problems: list[str] = []
        for pod in pods:
            try:
                self.create([pod], namespace=namespace)
            except ApiError as error:
                problems.append(error.message)
        return problems
