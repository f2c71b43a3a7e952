"""A Deployment's pods, as the Deployment and ReplicaSet controllers keep them.

Theory of operation: the Deployment's pod template has a hash (``meshlet.kubectl.pod_names``); its
pods are ``<deployment>-<hash>-<5 chars>`` with the label ``pod-template-hash`` and an
owner reference to the ReplicaSet ``<deployment>-<hash>`` (``meshlet.kubectl.pod_names``). ``reconcile_deployment``
compares the Deployment with the pods it owns and decides:

- pods of the current template: create the missing ones, up to ``replicas``; delete
  the extra ones (not-ready and newest first);
- pods of an older template (a changed template, or ``rollout restart``'s
  ``kubectl.kubernetes.io/restartedAt`` annotation): each goes once a pod of the
  current template is ready to take its place, so a new pod is ready before an old
  one goes;
- the status kubectl shows (``replicas``, ``updatedReplicas``, ``readyReplicas``,
  ``availableReplicas`` and the ``Available`` and ``Progressing`` conditions), with
  transition times kept while a condition does not change.

``orphaned_pods`` names the pods whose Deployment is gone (the garbage collector's
work). Pure: the clock (``now``) and the random source are passed in.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshlet.kubectl.pod_names import RandomSource, pod_name, pod_template_hash

__all__ = [
    "DeploymentPlan",
    "deployment_template_hash",
    "is_pod_ready",
    "orphaned_pods",
    "owned_pods",
    "reconcile_deployment",
]

HASH_LABEL = "pod-template-hash"


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    """What to do for one Deployment: pods to create and delete, and its new status."""

    create: tuple[dict[str, Any], ...] = field(default=())
    delete: tuple[str, ...] = field(default=())
    status: dict[str, Any] = field(default_factory=dict)


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body.get("metadata") or {}


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's ``Ready`` condition is ``True`` (and it is not being deleted)."""
    if _meta(pod).get("deletionTimestamp"):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def deployment_template_hash(deployment: Mapping[str, Any]) -> str:
    spec = deployment.get("spec") or {}
    collisions = (deployment.get("status") or {}).get("collisionCount")
    return pod_template_hash(spec.get("template") or {}, collisions)


def replica_set_name(deployment: str, hash_: str) -> str:
    return f"{deployment}-{hash_}"


def _selector(deployment: Mapping[str, Any]) -> Mapping[str, str]:
    return ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}


def _owner_name(pod: Mapping[str, Any]) -> str | None:
    for ref in _meta(pod).get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
            return str(ref.get("name"))
    return None


def owned_pods(
    deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The pods of ``deployment``: owned by one of its ReplicaSets and selected by it."""
    name = str(_meta(deployment).get("name"))
    selector = _selector(deployment)
    found = []
    for pod in pods:
        owner = _owner_name(pod)
        labels = _meta(pod).get("labels") or {}
        if owner is None or not owner.startswith(name + "-"):
            continue
        if owner != replica_set_name(name, str(labels.get(HASH_LABEL))):
            continue
        if all(labels.get(k) == v for k, v in selector.items()):
            found.append(pod)
    return found


def orphaned_pods(
    deployments: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Names of pods owned by a ReplicaSet whose Deployment no longer exists."""
    owned = {
        str(_meta(pod).get("name"))
        for deployment in deployments
        for pod in owned_pods(deployment, pods)
    }
    return sorted(
        str(_meta(pod).get("name"))
        for pod in pods
        if _owner_name(pod) is not None and str(_meta(pod).get("name")) not in owned
    )


def _new_pod(deployment: Mapping[str, Any], hash_: str, name: str) -> dict[str, Any]:
    meta = _meta(deployment)
    template = copy.deepcopy((deployment.get("spec") or {}).get("template") or {})
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {})
    labels[HASH_LABEL] = hash_
    metadata: dict[str, Any] = {
        "name": name,
        "generateName": replica_set_name(str(meta.get("name")), hash_) + "-",
        "namespace": meta.get("namespace"),
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": replica_set_name(str(meta.get("name")), hash_),
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{meta.get('uid')}/{hash_}")),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if template_meta.get("annotations"):
        metadata["annotations"] = dict(template_meta["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec") or {},
    }


def _removal_order(pod: Mapping[str, Any]) -> tuple[bool, str, str]:
    # not-ready first, then the newest first
    created = str(_meta(pod).get("creationTimestamp") or "")
    return (
        is_pod_ready(pod),
        "".join(chr(0x10FFFF - ord(c)) for c in created),
        str(_meta(pod).get("name")),
    )


def _condition(
    previous: Sequence[Mapping[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: str,
) -> dict[str, Any]:
    for old in previous:
        if old.get("type") == type_ and old.get("status") == status and old.get("reason") == reason:
            return dict(old)
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "lastUpdateTime": now,
    }


def reconcile_deployment(
    deployment: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    *,
    now: str,
    rng: RandomSource,
    taken_names: frozenset[str] = frozenset(),
) -> DeploymentPlan:
    """What the controllers do next for ``deployment``, given every pod of its namespace."""
    meta = _meta(deployment)
    name = str(meta.get("name"))
    spec = deployment.get("spec") or {}
    raw_replicas = spec.get("replicas")
    replicas = raw_replicas if isinstance(raw_replicas, int) else 1
    hash_ = deployment_template_hash(deployment)
    mine = [p for p in owned_pods(deployment, pods) if not _meta(p).get("deletionTimestamp")]
    current = [p for p in mine if (_meta(p).get("labels") or {}).get(HASH_LABEL) == hash_]
    old = [p for p in mine if p not in current]

    create: list[dict[str, Any]] = []
    names = set(taken_names) | {str(_meta(p).get("name")) for p in pods}
    for _ in range(max(0, replicas - len(current))):
        candidate = pod_name(replica_set_name(name, hash_), rng)
        while candidate in names:
            candidate = pod_name(replica_set_name(name, hash_), rng)
        names.add(candidate)
        create.append(_new_pod(deployment, hash_, candidate))

    delete: list[str] = []
    if len(current) > replicas:
        extra = sorted(current, key=_removal_order)[: len(current) - replicas]
        delete += [str(_meta(p).get("name")) for p in extra]
    ready_current = sum(1 for p in current if is_pod_ready(p))
    keep_old = max(0, replicas - ready_current)
    if len(old) > keep_old:
        going = sorted(old, key=_removal_order)[: len(old) - keep_old]
        delete += [str(_meta(p).get("name")) for p in going]

    total = len(mine)
    ready = sum(1 for p in mine if is_pod_ready(p))
    previous = (deployment.get("status") or {}).get("conditions") or []
    available = ready >= replicas - _max_unavailable(spec, replicas)
    conditions = [
        _condition(
            previous,
            "Available",
            "True" if available else "False",
            "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
            now=now,
        ),
        _condition(
            previous,
            "Progressing",
            "True",
            "NewReplicaSetAvailable"
            if ready_current >= replicas and not old
            else "ReplicaSetUpdated",
            f'ReplicaSet "{replica_set_name(name, hash_)}" has successfully progressed.'
            if ready_current >= replicas and not old
            else f'ReplicaSet "{replica_set_name(name, hash_)}" is progressing.',
            now=now,
        ),
    ]
    status: dict[str, Any] = {"observedGeneration": 1, "conditions": conditions}
    if total:
        status["replicas"] = total
    if current:
        status["updatedReplicas"] = len(current)
    if ready:
        status["readyReplicas"] = ready
        status["availableReplicas"] = ready
    if total - ready > 0:
        status["unavailableReplicas"] = max(0, replicas - ready) or None
        if status["unavailableReplicas"] is None:
            del status["unavailableReplicas"]
    return DeploymentPlan(tuple(create), tuple(delete), status)


def _max_unavailable(spec: Mapping[str, Any], replicas: int) -> int:
    raw = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(raw, int):
        return raw
    text = str(raw)
    if text.endswith("%") and text[:-1].isdigit():
        return (replicas * int(text[:-1])) // 100
    return int(text) if text.isdigit() else 0
