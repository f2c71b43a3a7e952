"""A pod's status as the kubelet reports it, from what its supervisor observed.

Theory of operation: the supervisor writes, per container, its state (``running``
with ``startedAt``; ``waiting`` with a reason such as ``CrashLoopBackOff``;
``terminated`` with ``exitCode``, ``reason`` and times), its ``restartCount``, its
readiness, and the state before the last restart (``lastState``). Before a container
can start at all the kubelet has its own reasons (``ContainerCreating`` while volumes
are made, ``ErrImagePull`` for an image that is not in the catalog,
``CreateContainerConfigError`` for a missing Secret). ``pod_status`` folds these into
the status Kubernetes shows:

- ``phase``: ``Pending`` until every container has started once, then ``Running``
  (with ``restartPolicy: Always`` a crashing container keeps the pod ``Running``);
- conditions ``PodReadyToStartContainers``, ``Initialized``, ``Ready``,
  ``ContainersReady`` and ``PodScheduled``, each with a ``lastTransitionTime`` that
  stays while the condition's status does not change;
- ``hostIP``/``hostIPs``, ``podIP``/``podIPs``, ``startTime``, ``qosClass``;
- ``containerStatuses`` sorted by name, as the kubelet sorts them.

Pure: the clock is passed in (``now``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PodObservation", "pod_status"]


@dataclass(frozen=True, slots=True)
class PodObservation:
    """What the node knows about one pod."""

    host_ip: str
    pod_ip: str | None = None
    start_time: str | None = None
    sandbox_ready: bool = False
    containers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    waiting: Mapping[str, tuple[str, str]] = field(default_factory=dict)


def _container_status(
    container: Mapping[str, Any],
    observed: Mapping[str, Any] | None,
    waiting: tuple[str, str] | None,
) -> dict[str, Any]:
    name = str(container.get("name"))
    image = str(container.get("image") or "")
    status: dict[str, Any] = {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "lastState": {},
        "state": {},
    }
    if observed is None or observed.get("state") is None:
        reason, message = waiting or ("ContainerCreating", "")
        state: dict[str, Any] = {"reason": reason}
        if message:
            state["message"] = message
        status["state"] = {"waiting": state}
        return status
    status["restartCount"] = int(observed.get("restartCount") or 0)
    status["lastState"] = dict(observed.get("lastState") or {})
    pid = observed.get("pid")
    if pid:
        status["containerID"] = f"meshlet://{pid}"
    kind = observed.get("state")
    if kind == "running":
        status["state"] = {"running": {"startedAt": observed.get("startedAt")}}
        status["started"] = True
        status["ready"] = bool(observed.get("ready"))
    elif kind == "terminated":
        terminated: dict[str, Any] = {
            "exitCode": int(observed.get("exitCode") or 0),
            "reason": observed.get("reason") or "Completed",
            "startedAt": observed.get("startedAt"),
            "finishedAt": observed.get("finishedAt"),
        }
        if observed.get("message"):
            terminated["message"] = observed["message"]
        status["state"] = {"terminated": terminated}
    else:
        waiting_state: dict[str, Any] = {"reason": observed.get("reason") or "ContainerCreating"}
        if observed.get("message"):
            waiting_state["message"] = observed["message"]
        status["state"] = {"waiting": waiting_state}
    return status


def _condition(
    previous: Sequence[Mapping[str, Any]],
    type_: str,
    ok: bool,
    now: str,
    reason: str | None = None,
) -> dict[str, Any]:
    value = "True" if ok else "False"
    for old in previous:
        if old.get("type") == type_ and old.get("status") == value:
            return dict(old)
    condition: dict[str, Any] = {
        "type": type_,
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if reason and not ok:
        condition["reason"] = reason
    return condition


def pod_status(pod: Mapping[str, Any], observed: PodObservation, *, now: str) -> dict[str, Any]:
    """The pod's ``status`` (keeping the transition times of its previous status)."""
    spec = pod.get("spec") or {}
    previous = (pod.get("status") or {}).get("conditions") or []
    containers = list(spec.get("containers") or [])
    statuses = [
        _container_status(
            c, observed.containers.get(str(c.get("name"))), observed.waiting.get(str(c.get("name")))
        )
        for c in containers
    ]
    statuses.sort(key=lambda s: str(s["name"]))
    ever_started = all(
        s["state"].get("running") or s["restartCount"] > 0 or s["state"].get("terminated")
        for s in statuses
    )
    all_ready = bool(statuses) and all(s["ready"] for s in statuses)
    phase = "Running" if statuses and ever_started and observed.pod_ip else "Pending"
    not_ready = [s["name"] for s in statuses if not s["ready"]]
    conditions = [
        _condition(previous, "PodReadyToStartContainers", observed.sandbox_ready, now),
        _condition(previous, "Initialized", True, now),
        _condition(previous, "Ready", all_ready, now, "ContainersNotReady"),
        _condition(previous, "ContainersReady", all_ready, now, "ContainersNotReady"),
        _condition(previous, "PodScheduled", True, now),
    ]
    for condition in conditions:
        if condition["type"] in ("Ready", "ContainersReady") and condition["status"] == "False":
            condition["message"] = f"containers with unready status: [{' '.join(not_ready)}]"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": observed.host_ip,
        "hostIPs": [{"ip": observed.host_ip}],
        "qosClass": "BestEffort",
        "containerStatuses": statuses,
    }
    if observed.pod_ip:
        status["podIP"] = observed.pod_ip
        status["podIPs"] = [{"ip": observed.pod_ip}]
    if observed.start_time:
        status["startTime"] = observed.start_time
    return status
