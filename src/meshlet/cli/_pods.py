"""Finding the pod (and its container) a verb works on, as kubectl does.

``POD`` or ``TYPE/NAME``: a Deployment or a Service stands for its first pod (the
ready ones first, then by name). Without ``-c`` the container is the one the pod's
``kubectl.kubernetes.io/default-container`` annotation names, else the first, and
kubectl's ``Defaulted container "x" out of: …`` line says so when there was a choice.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from meshlet.cli import _cluster
from meshlet.kubectl.messages import KubectlError
from meshlet.kubectl.names import resolve_type

__all__ = ["default_container", "find_pod", "selector_of"]

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def _ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def selector_of(obj: Mapping[str, Any]) -> str:
    """The label selector of a Deployment (``matchLabels``) or a Service (``selector``)."""
    selector = (obj.get("spec") or {}).get("selector") or {}
    if obj.get("kind") == "Deployment":
        selector = selector.get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def find_pod(client: _cluster.ClusterApi, namespace: str, text: str) -> dict[str, Any]:
    """The pod ``text`` names (``x``, ``pod/x``, ``deployment/x``, ``svc/x``)."""
    if "/" not in text:
        return client.get("/Pod", namespace=namespace, names=[text])[0]
    kind_text, _, name = text.partition("/")
    if not name:
        raise KubectlError("arguments in resource/name form must have a single resource and name")
    info = resolve_type(kind_text)
    if (info.group, info.kind) == ("", "Pod"):
        return client.get("/Pod", namespace=namespace, names=[name])[0]
    if (info.group, info.kind) not in (("apps", "Deployment"), ("", "Service")):
        raise KubectlError(f"cannot attach to {info.kind}: not implemented")
    owner = client.get(_cluster.kind_key(info), namespace=namespace, names=[name])[0]
    selector = selector_of(owner)
    if not selector:
        raise KubectlError(f"cannot attach to {info.kind}: selector is empty")
    pods = client.get("/Pod", namespace=namespace, selector=selector)
    if not pods:
        raise KubectlError(f"no pods found for {info.kind.lower()}/{name}")
    pods.sort(key=lambda p: (not _ready(p), str((p.get("metadata") or {}).get("name"))))
    return pods[0]


def _names(pod: Mapping[str, Any]) -> str:
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in spec.get("containers") or []]
    names += [f"{c.get('name')} (init)" for c in spec.get("initContainers") or []]
    return ", ".join(names)


def default_container(pod: Mapping[str, Any], container: str | None, *, quiet: bool) -> str:
    """The container to use: ``container`` if given (it must exist), else the default."""
    spec = pod.get("spec") or {}
    containers = [str(c.get("name")) for c in spec.get("containers") or []]
    name = str((pod.get("metadata") or {}).get("name"))
    if container:
        if container not in containers:
            raise KubectlError(f"container {container} is not valid for pod {name}")
        return container
    if not containers:
        raise KubectlError(f"pod {name} does not have any containers")
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER)
    if annotated in containers:
        return str(annotated)
    if not quiet and (len(containers) > 1 or spec.get("initContainers")):
        print(f'Defaulted container "{containers[0]}" out of: {_names(pod)}', file=sys.stderr)
    return containers[0]
