"""The reconcile loop's state, without I/O: kinds, caches, watch events and back-off.

Theory of operation: the control plane keeps one ``KindCache`` per kind it reads
(``KIND_SPECS``: Namespaces, Services, EndpointSlices, Pods, Secrets, ConfigMaps and
Istio's Sidecar, PeerAuthentication and DestinationRule at the versions Istio
serves). A reflector (``meshlet.kube.reflector``) fills it the way client-go's does:

1. **list** (paged with ``limit``/``continue``): ``KindCache.replace`` takes every
   item and the list's ``resourceVersion``;
2. **watch** from that version with ``allowWatchBookmarks=true``: each line of the
   stream is one ``WatchEvent`` (``parse_event``; ``LineBuffer`` cuts the byte stream
   into lines). ``ADDED``/``MODIFIED`` store the object, ``DELETED`` drops it, and
   every event, ``BOOKMARK`` included, moves the cache's ``resourceVersion`` on, so
   the next watch resumes where this one ended;
3. an ``ERROR`` event, or an HTTP error, is classified (``decide``): ``410 Gone``
   (``Expired``: the version is older than the server keeps) means **relist**, at
   once; ``429`` and ``5xx`` (and a lost connection) mean **retry** the same step
   after ``backoff_delay`` (exponential, capped, with the jitter passed in, and at
   least the server's ``Retry-After``); anything else (``403`` when RBAC is missing,
   ``404`` when a CRD is not installed) is retried slowly too, and logged, since an
   operator can fix it while the control plane runs.

The caches are keyed by the local store's kind names (``/Pod``,
``networking.istio.io/Sidecar`` …), so ``meshlet.daemon.controlplane.
snapshot_from_objects`` builds pilot's snapshot from them exactly as it does from the
local store. Pure: no sockets, clock or randomness (jitter and times are passed in).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from meshlet.errors import LoadError

__all__ = [
    "INITIAL_EVENTS_END",
    "KIND_SPECS",
    "Action",
    "EventType",
    "KindCache",
    "KindSpec",
    "LineBuffer",
    "WatchEvent",
    "backoff_delay",
    "decide",
    "parse_event",
    "spec_for",
]

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """A kind the control plane reads: its store key and where the API serves it."""

    key: str  # the local store's kind: "/Pod", "networking.istio.io/Sidecar"
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def kind(self) -> str:
        return self.key.rsplit("/", 1)[1]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection_path(self, namespace: str | None = None) -> str:
        """``/api/v1/pods``, ``/apis/G/V/namespaces/NS/PLURAL`` …"""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None and self.namespaced:
            return f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{base}/{self.plural}"

    def object_path(self, name: str, namespace: str | None = None) -> str:
        return f"{self.collection_path(namespace)}/{quote(name, safe='')}"


KIND_SPECS: tuple[KindSpec, ...] = (
    KindSpec("/Namespace", "", "v1", "namespaces", namespaced=False),
    KindSpec("/Service", "", "v1", "services"),
    KindSpec("discovery.k8s.io/EndpointSlice", "discovery.k8s.io", "v1", "endpointslices"),
    KindSpec("/Pod", "", "v1", "pods"),
    KindSpec("/Secret", "", "v1", "secrets"),
    KindSpec("/ConfigMap", "", "v1", "configmaps"),
    KindSpec("networking.istio.io/Sidecar", "networking.istio.io", "v1alpha3", "sidecars"),
    KindSpec(
        "networking.istio.io/DestinationRule",
        "networking.istio.io",
        "v1alpha3",
        "destinationrules",
    ),
    KindSpec(
        "security.istio.io/PeerAuthentication", "security.istio.io", "v1", "peerauthentications"
    ),
)


def spec_for(key: str) -> KindSpec:
    for spec in KIND_SPECS:
        if spec.key == key:
            return spec
    raise KeyError(key)


class EventType(enum.Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One line of a watch stream."""

    type: EventType
    object: Mapping[str, Any]

    @property
    def resource_version(self) -> str | None:
        value = (self.object.get("metadata") or {}).get("resourceVersion")
        return str(value) if value else None

    @property
    def status_code(self) -> int | None:
        """For an ``ERROR`` event: the HTTP code its ``Status`` carries."""
        code = self.object.get("code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    @property
    def ends_initial_events(self) -> bool:
        annotations = (self.object.get("metadata") or {}).get("annotations") or {}
        return self.type is EventType.BOOKMARK and annotations.get(INITIAL_EVENTS_END) == "true"


def parse_event(line: bytes | str) -> WatchEvent:
    """A watch line (``{"type": …, "object": {…}}``); ``LoadError`` when it is not one."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise LoadError(f"a watch event is not JSON: {error}") from None
    if not isinstance(value, dict) or not isinstance(value.get("object"), dict):
        raise LoadError("a watch event has no object")
    try:
        kind = EventType(value.get("type"))
    except ValueError:
        raise LoadError(f"unknown watch event type {value.get('type')!r}") from None
    return WatchEvent(kind, value["object"])


class LineBuffer:
    """Cuts a byte stream into lines (a watch event may arrive in pieces)."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        return [line for line in lines if line.strip()]

    def rest(self) -> bytes | None:
        """What is left at the end of the stream (a last line without a newline)."""
        rest, self._pending = self._pending, b""
        return rest if rest.strip() else None


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class KindCache:
    """The objects of one kind as the API server last said, and the version of that."""

    def __init__(self, spec: KindSpec) -> None:
        self.spec = spec
        self.resource_version = ""
        self.synced = False
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}

    def _typed(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        # Items of a list carry no apiVersion/kind; the snapshot needs both.
        return {"apiVersion": self.spec.api_version, "kind": self.spec.kind, **obj}

    def replace(self, items: Iterable[Mapping[str, Any]], resource_version: str) -> bool:
        """A fresh list: every item, and the list's version. True when anything changed."""
        fresh = {_key(item): self._typed(item) for item in items}
        changed = fresh != self._objects or not self.synced
        self._objects = fresh
        self.resource_version = resource_version
        self.synced = True
        return changed

    def apply(self, event: WatchEvent) -> bool:
        """One watch event. True when the objects changed."""
        version = event.resource_version
        changed = False
        if event.type in (EventType.ADDED, EventType.MODIFIED):
            key = _key(event.object)
            typed = self._typed(event.object)
            changed = self._objects.get(key) != typed
            self._objects[key] = typed
        elif event.type is EventType.DELETED:
            changed = self._objects.pop(_key(event.object), None) is not None
        elif event.type is EventType.ERROR:
            return False
        if version:
            self.resource_version = version
        return changed

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get((namespace, name))

    def items(self) -> list[dict[str, Any]]:
        """Every object, sorted by namespace and name."""
        return [self._objects[key] for key in sorted(self._objects)]

    def __len__(self) -> int:
        return len(self._objects)


class Action(enum.Enum):
    """What the reconcile loop does after a failure."""

    RELIST = "relist"  # 410 Gone: the version is too old; list again at once
    RETRY = "retry"  # 429, 5xx, a lost connection: the same step after a back-off
    WAIT = "wait"  # 4xx the operator must fix (RBAC, a missing CRD): retry slowly


def decide(status_code: int | None) -> Action:
    """The action for an HTTP status (``None``: the connection failed)."""
    if status_code == 410:
        return Action.RELIST
    if status_code is None or status_code == 429 or status_code >= 500:
        return Action.RETRY
    return Action.WAIT


def backoff_delay(
    attempt: int,
    *,
    jitter: float = 0.0,
    base: float = 0.8,
    cap: float = 30.0,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before try ``attempt`` (1 for the first retry).

    ``base * 2**(attempt-1)``, at most ``cap``, stretched by ``jitter`` (0..1, a
    fraction added on top), and never less than the server's ``Retry-After``.
    """
    if attempt < 1:
        return 0.0
    delay = min(cap, base * float(2 ** min(attempt - 1, 30)))
    delay *= 1.0 + max(0.0, min(jitter, 1.0))
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return delay
