"""The sidecar injector on Kubernetes: the webhook's answer and ``kube-inject``.

Theory of operation: both are thin wrappers around ``meshlet.daemon.injection``, so a
pod gets the same sidecar whichever way it comes.

- ``review_admission(review, …)`` reads an ``admission.k8s.io/v1`` AdmissionReview.
  A CREATE of a ``v1`` Pod that ``injection_required`` selects is answered
  ``allowed: true`` with a ``JSONPatch`` (base64, RFC 6902, ``meshlet.kube.jsonpatch``)
  from the pod as the API server sent it to the injected pod; anything else is
  allowed untouched. An injection that cannot be done (a malformed
  ``sidecar.istio.io/userVolume``) is refused with its message, as Istio's injector
  refuses it. The pod in a review may have no name yet (``generateName``): nothing
  here needs one. The namespace's labels come from the caller (the control plane's
  Namespace cache); when it does not know them, the API server's namespace and
  object selectors already chose this pod, so the namespace counts as enabled.
- ``inject_objects(objects, …)`` is ``istioctl kube-inject``: every Pod, and the pod
  template of every workload (Deployment, StatefulSet, DaemonSet, ReplicaSet,
  ReplicationController, Job, CronJob, and the items of a ``List``), gets the sidecar
  unless it opts out (``sidecar.istio.io/inject: "false"``); other objects pass
  through unchanged, in order.

Pure: JSON values in, JSON values out.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from meshlet.daemon.injection import InjectionSettings, inject, injection_required
from meshlet.errors import ConfigError, MeshletError
from meshlet.kube.jsonpatch import make_patch

__all__ = [
    "ADMISSION_VERSION",
    "WORKLOAD_TEMPLATE_PATHS",
    "inject_objects",
    "review_admission",
]

ADMISSION_VERSION = "admission.k8s.io/v1"

#: Where each workload kind keeps its pod template.
WORKLOAD_TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

_ENABLED = {"istio-injection": "enabled"}


def _response(uid: str, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": ADMISSION_VERSION,
        "kind": "AdmissionReview",
        "response": {"uid": uid, **fields},
    }


def review_admission(
    review: Mapping[str, Any],
    *,
    settings: InjectionSettings,
    namespace_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The AdmissionReview to answer; ``ConfigError`` when ``review`` is not one."""
    if not isinstance(review, Mapping) or review.get("kind") != "AdmissionReview":
        raise ConfigError("the request body is not an AdmissionReview")
    if review.get("apiVersion") != ADMISSION_VERSION:
        raise ConfigError(
            f"AdmissionReview {review.get('apiVersion')!r} is not supported; "
            f"this webhook speaks {ADMISSION_VERSION}"
        )
    request = review.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str):
        raise ConfigError("the AdmissionReview has no request uid")
    uid = str(request["uid"])
    kind = request.get("kind") or {}
    pod = request.get("object")
    if (
        request.get("operation") != "CREATE"
        or kind.get("group") != ""
        or kind.get("kind") != "Pod"
        or not isinstance(pod, Mapping)
    ):
        return _response(uid, allowed=True)
    original: dict[str, Any] = copy.deepcopy(dict(pod))
    placed = copy.deepcopy(original)
    metadata = placed.setdefault("metadata", {})
    if not metadata.get("namespace") and isinstance(request.get("namespace"), str):
        metadata["namespace"] = request["namespace"]
    labels = _ENABLED if namespace_labels is None else namespace_labels
    if not injection_required(placed, labels, settings):
        return _response(uid, allowed=True)
    try:
        injected = inject(placed, settings)
    except MeshletError as error:
        return _response(uid, allowed=False, status={"message": error.message})
    if "namespace" not in (original.get("metadata") or {}):
        injected["metadata"].pop("namespace", None)
    patch = make_patch(original, injected)
    encoded = base64.b64encode(
        json.dumps(patch, separators=(",", ":"), sort_keys=True).encode("utf-8")
    ).decode("ascii")
    return _response(uid, allowed=True, patchType="JSONPatch", patch=encoded)


def _inject_pod(
    pod: Mapping[str, Any], namespace: str, settings: InjectionSettings
) -> dict[str, Any]:
    placed: dict[str, Any] = copy.deepcopy(dict(pod))
    metadata = placed.setdefault("metadata", {}) or {}
    placed["metadata"] = metadata
    had_namespace = "namespace" in metadata
    if not metadata.get("namespace"):
        metadata["namespace"] = namespace
    if not injection_required(placed, _ENABLED, settings):
        return copy.deepcopy(dict(pod))
    injected = inject(placed, settings)
    if not had_namespace:
        injected["metadata"].pop("namespace", None)
    return injected


def _inject_object(
    obj: Mapping[str, Any], namespace: str, settings: InjectionSettings, where: str
) -> dict[str, Any]:
    result: dict[str, Any] = copy.deepcopy(dict(obj))
    kind = obj.get("kind")
    own_namespace = str((obj.get("metadata") or {}).get("namespace") or namespace)
    try:
        if kind == "List":
            result["items"] = [
                _inject_object(item, namespace, settings, f"{where} item {index}")
                for index, item in enumerate(obj.get("items") or [])
            ]
        elif kind == "Pod":
            result = _inject_pod(obj, own_namespace, settings)
        elif isinstance(kind, str) and kind in WORKLOAD_TEMPLATE_PATHS:
            *parents, last = WORKLOAD_TEMPLATE_PATHS[kind]
            holder: Any = result
            for key in parents:
                holder = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(holder, dict) and isinstance(holder.get(last), dict):
                holder[last] = _inject_pod(holder[last], own_namespace, settings)
    except ConfigError as error:
        name = (obj.get("metadata") or {}).get("name") or "(no name)"
        raise ConfigError(f"{where}: {kind} {own_namespace}/{name}: {error.message}") from None
    return result


def inject_objects(
    objects: Sequence[Mapping[str, Any]],
    *,
    settings: InjectionSettings,
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """``istioctl kube-inject``: every object, with a sidecar wherever a pod is made."""
    return [
        _inject_object(obj, namespace, settings, f"document {index + 1}")
        for index, obj in enumerate(objects)
    ]
