from __future__ import annotations

import copy
import itertools
from typing import Any

from meshlet.daemon.controllers.deployments import (
    deployment_template_hash,
    is_pod_ready,
    orphaned_pods,
    owned_pods,
    reconcile_deployment,
)

NOW = "2026-01-01T00:00:00Z"


def deployment(replicas: int = 2, annotation: str | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": "sleep"}},
        "spec": {"containers": [{"name": "sleep", "image": "curlimages/curl"}]},
    }
    if annotation:
        template["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": annotation}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleep", "namespace": "default", "uid": "u-1"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "sleep"}},
            "template": template,
        },
    }


class Counting:
    """A random source that counts up: 0, 1, 2 … (modulo the range asked for)."""

    def __init__(self, values: Any = None) -> None:
        self.values = values if values is not None else itertools.count()

    def randrange(self, stop: int) -> int:
        return int(next(self.values)) % stop


def chooser() -> Counting:
    return Counting()


def ready(pod: dict[str, Any], value: bool = True, created: str = NOW) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["metadata"]["creationTimestamp"] = created
    pod["status"] = {"conditions": [{"type": "Ready", "status": "True" if value else "False"}]}
    return pod


def test_creates_the_missing_replicas_named_as_kubernetes_names_them() -> None:
    plan = reconcile_deployment(deployment(), [], now=NOW, rng=chooser())
    assert len(plan.create) == 2 and plan.delete == ()
    hash_ = deployment_template_hash(deployment())
    first = plan.create[0]
    assert first["metadata"]["name"] == f"sleep-{hash_}-bcdfg"
    assert plan.create[1]["metadata"]["name"] == f"sleep-{hash_}-hjklm"
    assert first["metadata"]["labels"] == {"app": "sleep", "pod-template-hash": hash_}
    owner = first["metadata"]["ownerReferences"][0]
    assert (
        owner["kind"] == "ReplicaSet" and owner["name"] == f"sleep-{hash_}" and owner["controller"]
    )
    assert first["spec"]["containers"][0]["name"] == "sleep"
    assert plan.status["conditions"][0]["type"] == "Available"
    assert "readyReplicas" not in plan.status


def test_steady_state_does_nothing_and_reports_ready() -> None:
    plan = reconcile_deployment(deployment(), [], now=NOW, rng=chooser())
    pods = [ready(p) for p in plan.create]
    again = reconcile_deployment(deployment(), pods, now=NOW, rng=chooser())
    assert again.create == () and again.delete == ()
    assert again.status["replicas"] == 2 and again.status["readyReplicas"] == 2
    assert again.status["updatedReplicas"] == 2 and again.status["availableReplicas"] == 2
    available = again.status["conditions"][0]
    assert available["status"] == "True" and available["reason"] == "MinimumReplicasAvailable"


def test_name_collisions_are_avoided() -> None:
    plan = reconcile_deployment(deployment(1), [], now=NOW, rng=Counting(itertools.repeat(0)))
    taken = plan.create[0]["metadata"]["name"]
    second = reconcile_deployment(
        deployment(1),
        [],
        now=NOW,
        rng=Counting(iter([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])),
        taken_names=frozenset({taken}),
    )
    assert second.create[0]["metadata"]["name"] != taken


def test_scale_down_removes_not_ready_then_newest() -> None:
    plan = reconcile_deployment(deployment(3), [], now=NOW, rng=chooser())
    a, b, c = plan.create
    pods = [
        ready(a, created="2026-01-01T00:00:01Z"),
        ready(b, created="2026-01-01T00:00:02Z"),
        ready(c, False),
    ]
    down = reconcile_deployment(deployment(1), pods, now=NOW, rng=chooser())
    assert down.create == ()
    assert down.delete == (c["metadata"]["name"], b["metadata"]["name"])


def test_a_changed_template_rolls_new_pods_before_old_ones_go() -> None:
    old_plan = reconcile_deployment(deployment(1), [], now=NOW, rng=chooser())
    old = ready(old_plan.create[0])
    restarted = deployment(1, annotation="2026-01-01T01:00:00Z")
    step1 = reconcile_deployment(restarted, [old], now=NOW, rng=chooser())
    assert len(step1.create) == 1 and step1.delete == ()  # the old pod stays until the new is ready
    new = step1.create[0]
    assert new["metadata"]["labels"]["pod-template-hash"] == deployment_template_hash(restarted)
    step2 = reconcile_deployment(restarted, [old, ready(new, False)], now=NOW, rng=chooser())
    assert step2.create == () and step2.delete == ()
    step3 = reconcile_deployment(restarted, [old, ready(new)], now=NOW, rng=chooser())
    assert step3.delete == (old["metadata"]["name"],)


def test_pods_of_others_are_not_owned_and_orphans_are_found() -> None:
    mine = reconcile_deployment(deployment(1), [], now=NOW, rng=chooser()).create[0]
    stranger = copy.deepcopy(mine)
    stranger["metadata"]["name"] = "other-abc-bcdfg"
    stranger["metadata"]["ownerReferences"][0]["name"] = "other-abc"
    stranger["metadata"]["labels"]["pod-template-hash"] = "abc"
    handmade = {"metadata": {"name": "bare", "labels": {"app": "sleep"}}}
    pods = [mine, stranger, handmade]
    assert owned_pods(deployment(1), pods) == [mine]
    assert orphaned_pods([deployment(1)], pods) == ["other-abc-bcdfg"]
    assert orphaned_pods([], pods) == sorted([mine["metadata"]["name"], "other-abc-bcdfg"])


def test_condition_times_stay_while_nothing_changes() -> None:
    first = reconcile_deployment(deployment(1), [], now=NOW, rng=chooser())
    body = {**deployment(1), "status": first.status}
    later = reconcile_deployment(body, [], now="2026-01-02T00:00:00Z", rng=chooser())
    assert later.status["conditions"] == first.status["conditions"]


def test_is_pod_ready() -> None:
    pod = {"metadata": {"name": "x"}}
    assert not is_pod_ready(pod)
    assert is_pod_ready(ready(pod))
    assert not is_pod_ready(ready(pod, False))
