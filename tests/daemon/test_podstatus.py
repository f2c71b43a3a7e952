from __future__ import annotations

from typing import Any

from meshlet.daemon.controllers.podstatus import PodObservation, pod_status

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"


def pod(*names: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "test"},
        "spec": {"containers": [{"name": n, "image": f"img/{n}"} for n in names]},
    }
    if status is not None:
        body["status"] = status
    return body


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_a_pod_being_made_is_pending_container_creating() -> None:
    status = pod_status(pod("app"), PodObservation(host_ip="10.244.0.1"), now=NOW)
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert conditions(status)["Ready"] == "False" and conditions(status)["PodScheduled"] == "True"
    assert "podIP" not in status


def test_an_unmapped_image_shows_err_image_pull() -> None:
    observed = PodObservation(
        host_ip="10.244.0.1",
        pod_ip="10.244.0.2",
        waiting={"app": ("ErrImagePull", "not in the catalog")},
    )
    status = pod_status(pod("app"), observed, now=NOW)
    assert status["containerStatuses"][0]["state"]["waiting"] == {
        "reason": "ErrImagePull",
        "message": "not in the catalog",
    }
    assert status["phase"] == "Pending"


def test_running_and_ready_with_a_sidecar() -> None:
    running = {"state": "running", "startedAt": NOW, "ready": True, "restartCount": 0, "pid": 42}
    observed = PodObservation(
        host_ip="10.244.0.1",
        pod_ip="10.244.0.2",
        start_time=NOW,
        sandbox_ready=True,
        containers={"istio-proxy": running, "httpbin": running},
    )
    status = pod_status(pod("httpbin", "istio-proxy"), observed, now=NOW)
    assert status["phase"] == "Running"
    assert [s["name"] for s in status["containerStatuses"]] == ["httpbin", "istio-proxy"]
    assert all(s["ready"] and s["started"] for s in status["containerStatuses"])
    assert status["podIP"] == "10.244.0.2" and status["podIPs"] == [{"ip": "10.244.0.2"}]
    assert status["startTime"] == NOW
    assert set(conditions(status).values()) == {"True"}
    assert status["containerStatuses"][0]["state"] == {"running": {"startedAt": NOW}}


def test_a_crash_looping_container_keeps_the_pod_running_but_not_ready() -> None:
    crashed = {
        "state": "waiting",
        "reason": "CrashLoopBackOff",
        "message": "back-off 10s restarting failed container=app pod=p_test(u)",
        "restartCount": 2,
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
    }
    observed = PodObservation(
        host_ip="10.244.0.1", pod_ip="10.244.0.2", containers={"app": crashed}
    )
    status = pod_status(pod("app"), observed, now=NOW)
    app = status["containerStatuses"][0]
    assert status["phase"] == "Running"
    assert app["restartCount"] == 2 and app["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert app["lastState"]["terminated"]["exitCode"] == 1
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (
        ready["status"] == "False" and ready["message"] == "containers with unready status: [app]"
    )


def test_transition_times_stay_while_a_condition_does_not_change() -> None:
    observed = PodObservation(host_ip="10.244.0.1")
    first = pod_status(pod("app"), observed, now=NOW)
    again = pod_status(pod("app", status=first), observed, now=LATER)
    assert again == first
    running = {"state": "running", "startedAt": LATER, "ready": True}
    now_ready = pod_status(
        pod("app", status=first),
        PodObservation(host_ip="10.244.0.1", pod_ip="10.244.0.2", containers={"app": running}),
        now=LATER,
    )
    times = {c["type"]: c["lastTransitionTime"] for c in now_ready["conditions"]}
    assert times["Ready"] == LATER and times["PodScheduled"] == NOW
