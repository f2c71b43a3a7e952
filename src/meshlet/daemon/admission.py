"""The API server's admission of a write: decode, place, default, validate, inject.

Theory of operation: a request (``apply`` or ``create``) carries objects as plain
dicts. ``admit`` turns each into what the store will keep, in request order, or
refuses the whole request with the message kubectl prints:

1. decode with the loader's schemas (unknown kinds and fields are refused);
2. place it: a namespaced object without ``metadata.namespace`` goes to the
   request's namespace, which must exist (or be created earlier in the same request):
   ``Error from server (NotFound): error when creating "STDIN": namespaces "x" not found``;
3. validate it as the API server does (Kubernetes kinds:
   ``The Service "x" is invalid: …``) or as istiod's webhook does (Istio kinds:
   ``Error from server: error when creating "STDIN": admission webhook
   "validation.istio.io" denied the request: configuration is invalid: …``); warnings
   are kept for the CLI to print as ``Warning: …``;
4. default it as the API server does (a Service's ClusterIP from the Service range,
   port protocols and target ports, a pod's service account, restart and DNS
   policies, a Deployment's replicas and strategy, a Secret's type and ``stringData``
   folded into ``data``), keeping what the server set before (a Service keeps its
   ClusterIP; a Deployment's selector and a Service's ClusterIP may not change);
5. a Pod in a namespace with injection enabled gets its sidecar
   (``meshlet.daemon.injection``).

Defaulting is deterministic, so applying the same input twice is ``unchanged``.
Pure: the current objects come from a ``ClusterView``; the ClusterIP allocator is a
value passed in.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Protocol

from meshlet.cluster.protocol import ApiError
from meshlet.daemon.injection import InjectionSettings, inject, injection_required
from meshlet.errors import ConfigError, ErrorList, Location, MeshletError
from meshlet.resources.kinds import KindInfo
from meshlet.resources.loader import decode_document
from meshlet.resources.objects import Resource
from meshlet.resources.validation import Level, validate
from meshlet.resources.yamlsource import Document
from meshlet.runtime.errors import IpamError
from meshlet.runtime.ipam import IpAllocator
from meshlet.store import ObjectKey

__all__ = [
    "Admitted",
    "ClusterView",
    "admit",
    "default_object",
    "kind_key",
    "source_name",
]

NODE_NAME = "meshlet"


class ClusterView(Protocol):
    """What admission reads of the cluster: objects by key."""

    def get_body(self, key: ObjectKey) -> Mapping[str, Any] | None: ...

    def list_bodies(self, kind: str, namespace: str | None = None) -> list[Mapping[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Admitted:
    """One object as the store will keep it, with the warnings to show."""

    key: ObjectKey
    body: dict[str, Any]
    info: KindInfo
    warnings: tuple[str, ...] = field(default=())
    created: bool = True

    def result(self, action: str) -> dict[str, Any]:
        return {
            "kind": self.info.kind,
            "group": self.info.group,
            "name": self.key.name,
            "namespace": self.key.namespace or None,
            "action": action,
            "warnings": list(self.warnings),
        }


def kind_key(info: KindInfo) -> str:
    """The store's kind: ``group/Kind`` (``/Pod`` for the core group)."""
    return f"{info.group}/{info.kind}"


def source_name(source: Mapping[str, Any] | None) -> str:
    """How kubectl names where an object came from: ``STDIN`` or the file."""
    file = str((source or {}).get("file") or "STDIN")
    return "STDIN" if file == "-" else file


def _decode(obj: Mapping[str, Any], source: Mapping[str, Any] | None) -> Resource:
    line = (source or {}).get("line")
    document = Document(
        copy.deepcopy(dict(obj)),
        Location(source_name(source), line if isinstance(line, int) else None),
    )
    try:
        resources = decode_document(document)
    except ErrorList as errors:
        raise ApiError("BadRequest", "\n".join(f"error: {e}" for e in errors.errors)) from None
    if len(resources) != 1:
        raise ApiError("BadRequest", "error: a List cannot be sent as one object")
    return resources[0]


def _multierror(messages: Sequence[str]) -> str:
    """Istio's ``multierror`` text for one or several messages."""
    if len(messages) == 1:
        return messages[0]
    items = "".join(f"\t* {message}\n" for message in messages)
    return f"{len(messages)} errors occurred:\n{items}"


def _refusal(resource: Resource, messages: list[str], where: str, created: bool) -> ApiError:
    if resource.info.group.endswith("istio.io"):
        verb = f'error when creating "{where}": ' if created else ""
        return ApiError(
            "Invalid",
            f'Error from server: {verb}admission webhook "validation.istio.io" denied the '
            f"request: configuration is invalid: {_multierror(messages)}".rstrip("\n"),
        )
    if len(messages) == 1:
        return ApiError(
            "Invalid", f'The {resource.kind} "{resource.name}" is invalid: {messages[0]}'
        )
    causes = "\n".join(f"* {message}" for message in messages)
    return ApiError("Invalid", f'The {resource.kind} "{resource.name}" is invalid: \n{causes}')


# --- defaults ---------------------------------------------------------------------------


def _image_pull_policy(image: str) -> str:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_container(container: dict[str, Any]) -> None:
    container.setdefault("imagePullPolicy", _image_pull_policy(str(container.get("image") or "")))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def _default_pod_spec(spec: dict[str, Any]) -> None:
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        _default_container(container)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account


def default_object(
    info: KindInfo,
    body: dict[str, Any],
    current: Mapping[str, Any] | None,
    *,
    allocate_ip: Any = None,
    node_name: str = NODE_NAME,
) -> None:
    """Fill in what the API server defaults, in place (``allocate_ip(owner)`` gives a
    Service its ClusterIP)."""
    kind = (info.group, info.kind)
    metadata = body.setdefault("metadata", {})
    if kind == ("", "Namespace"):
        labels = metadata.setdefault("labels", {}) or {}
        metadata["labels"] = labels
        labels["kubernetes.io/metadata.name"] = metadata["name"]
        body["spec"] = {"finalizers": ["kubernetes"]}
        body.setdefault("status", {"phase": "Active"})
    elif kind == ("", "Service"):
        spec = body.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
        old_ip = ((current or {}).get("spec") or {}).get("clusterIP")
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_ip or (allocate_ip(metadata) if allocate_ip else None)
        spec["clusterIPs"] = [spec["clusterIP"]] if spec.get("clusterIP") else []
        body.setdefault("status", {"loadBalancer": {}})
    elif kind == ("apps", "Deployment"):
        spec = body.setdefault("spec", {})
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
        )
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        _default_pod_spec(template.setdefault("spec", {}))
    elif kind == ("", "Pod"):
        spec = body.setdefault("spec", {})
        _default_pod_spec(spec)
        spec.setdefault("nodeName", node_name)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
    elif kind == ("", "Secret"):
        body.setdefault("type", "Opaque")
        string_data = body.pop("stringData", None) or {}
        if string_data:
            data = dict(body.get("data") or {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            body["data"] = dict(sorted(data.items()))


def _immutable(info: KindInfo, body: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    if (info.group, info.kind) == ("apps", "Deployment"):
        new = (body.get("spec") or {}).get("selector")
        old = (current.get("spec") or {}).get("selector")
        if old is not None and new != old:
            errors.append(f"spec.selector: Invalid value: {_go_value(new)}: field is immutable")
    if (info.group, info.kind) == ("", "Service"):
        new_ip = (body.get("spec") or {}).get("clusterIP")
        old_ip = (current.get("spec") or {}).get("clusterIP")
        if old_ip and new_ip and new_ip != old_ip:
            errors.append(
                f'spec.clusterIPs[0]: Invalid value: []string{{"{new_ip}"}}: may not change once set'
            )
    return errors


def _go_value(value: Any) -> str:
    if isinstance(value, dict):
        labels = (value.get("matchLabels") or {}) if "matchLabels" in value else value
        inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
        return f"v1.LabelSelector{{MatchLabels:map[string]string{{{inner}}}}}"
    return repr(value)


# --- admission ----------------------------------------------------------------------------


def admit(
    objects: Sequence[Mapping[str, Any]],
    *,
    namespace: str,
    view: ClusterView,
    service_ips: IpAllocator,
    sources: Sequence[Mapping[str, Any] | None] | None = None,
    create_only: bool = False,
    injection: InjectionSettings | None = None,
    node_name: str = NODE_NAME,
) -> list[Admitted]:
    """What the store will keep for ``objects``, or the ``ApiError`` refusing them all."""
    if not objects:
        raise ApiError("BadRequest", "error: no objects passed to apply")
    named = sources is not None
    sources = list(sources) if sources is not None else [None] * len(objects)
    if len(sources) != len(objects):
        raise ApiError("BadRequest", "error: one source per object is expected")
    admitted: list[Admitted] = []
    new_namespaces: dict[str, Mapping[str, Any]] = {}
    seen: set[ObjectKey] = set()
    for obj, source in zip(objects, sources, strict=True):
        where = source_name(source)
        when = f'error when creating "{where}": ' if named else ""
        resource = _decode(obj, source)
        info = resource.info
        body: dict[str, Any] = copy.deepcopy(dict(resource.body))
        metadata = body.setdefault("metadata", {})
        for server_field in (
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
        ):
            metadata.pop(server_field, None)
        ns = ""
        if info.namespaced:
            ns = str(metadata.get("namespace") or namespace)
            metadata["namespace"] = ns
            ns_key = ObjectKey("/Namespace", "", ns)
            if ns not in new_namespaces and view.get_body(ns_key) is None:
                raise ApiError(
                    "NotFound",
                    f'Error from server (NotFound): {when}namespaces "{ns}" not found',
                )
        else:
            metadata.pop("namespace", None)
        key = ObjectKey(kind_key(info), ns, resource.name)
        if key in seen:
            raise ApiError(
                "BadRequest",
                f'error: {info.plural} "{resource.name}" appears twice in the input ("{where}")',
            )
        seen.add(key)
        current = view.get_body(key)
        if current is not None and create_only:
            raise ApiError(
                "AlreadyExists",
                f"Error from server (AlreadyExists): {when}"
                f'{info.plural} "{resource.name}" already exists',
            )
        placed = Resource(info, resource.api_version, body, resource.document, ns or None)
        findings = validate(placed)
        errors = [f.message for f in findings if f.level is Level.ERROR]
        if current is not None:
            errors += _immutable(info, body, current)
        if errors:
            raise _refusal(placed, errors, where, current is None and named)
        warnings = tuple(f.message for f in findings if f.level is Level.WARNING)

        def allocate(meta: Mapping[str, Any], _ns: str = ns) -> str:
            try:
                return str(service_ips.allocate(f"{_ns}/{meta.get('name')}"))
            except IpamError as error:
                raise ApiError("InternalError", f"Error from server: {error.message}") from None

        requested = (body.get("spec") or {}).get("clusterIP") if info.kind == "Service" else None
        if requested and requested != "None" and current is None:
            try:
                service_ips.allocate_specific(IPv4Address(requested), f"{ns}/{resource.name}")
            except (IpamError, ValueError) as error:
                text = error.message if isinstance(error, MeshletError) else str(error)
                raise ApiError(
                    "Invalid",
                    f'The Service "{resource.name}" is invalid: spec.clusterIPs: '
                    f'Invalid value: []string{{"{requested}"}}: {text}',
                ) from None
        default_object(info, body, current, allocate_ip=allocate, node_name=node_name)
        if info.kind == "Pod" and not info.group and current is None:
            body = _maybe_inject(body, view, new_namespaces, injection)
        if (info.group, info.kind) == ("", "Namespace"):
            new_namespaces[resource.name] = body
        admitted.append(Admitted(key, body, info, warnings, current is None))
    return admitted


def _maybe_inject(
    body: dict[str, Any],
    view: ClusterView,
    new_namespaces: Mapping[str, Mapping[str, Any]],
    settings: InjectionSettings | None,
) -> dict[str, Any]:
    ns = str(body["metadata"].get("namespace") or "default")
    namespace = new_namespaces.get(ns) or view.get_body(ObjectKey("/Namespace", "", ns)) or {}
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    if not injection_required(body, labels, settings):
        return body
    try:
        return inject(body, settings)
    except ConfigError as error:
        raise ApiError(
            "InternalError",
            "Error from server (InternalError): Internal error occurred: failed calling webhook "
            f'"namespace.sidecar-injector.istio.io": {error.message}',
        ) from None
