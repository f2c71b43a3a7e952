"""The webhook's answer to the recorded AdmissionReview, and kube-inject's output.

The AdmissionReview is what a v1.36 API server sent a webhook for the scenario's
httpbin pod. The webhook's JSONPatch must apply cleanly (with the ``jsonpatch``
library) to the pod in it and add exactly the sidecar that ``kube-inject`` adds to the
pod as it was posted.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import ssl
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest
import yaml

from meshlet.ca.signing import make_self_signed_root
from meshlet.cli.main import main
from meshlet.kube.admission import inject_objects, review_admission
from meshlet.kube.jsonpatch import make_patch
from meshlet.kube.settings import kube_settings_from_flags
from meshlet.kube.webhook import WebhookServer

SETTINGS = kube_settings_from_flags([]).injection()


@pytest.fixture
def recorded(api_schemas: Path) -> Path:
    return api_schemas / "kubernetes-api"


def _review(recorded: Path, name: str = "admission-review-request-pod-httpbin.json") -> Any:
    return json.loads((recorded / name).read_text())


def _patched(review: Any, answer: Any) -> dict[str, Any]:
    response = answer["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patch = jsonpatch.JsonPatch(json.loads(base64.b64decode(response["patch"])))
    return patch.apply(copy.deepcopy(review["request"]["object"]))  # type: ignore[no-any-return]


def _added(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What injection added: containers, init containers, volumes, annotations, labels."""

    def by_name(items: list[dict[str, Any]] | None) -> dict[str, Any]:
        return {item["name"]: item for item in items or []}

    def new(key: str) -> dict[str, Any]:
        old = by_name(before["spec"].get(key))
        return {k: v for k, v in by_name(after["spec"].get(key)).items() if k not in old}

    def new_map(key: str) -> dict[str, Any]:
        old = before["metadata"].get(key) or {}
        return {k: v for k, v in (after["metadata"].get(key) or {}).items() if old.get(k) != v}

    return {
        "containers": new("containers"),
        "initContainers": new("initContainers"),
        "volumes": new("volumes"),
        "annotations": new_map("annotations"),
        "labels": new_map("labels"),
        # the app's own containers are untouched
        "app": [c for c in after["spec"]["containers"] if c["name"] != "istio-proxy"]
        == before["spec"]["containers"],
    }


def test_the_patch_applies_and_adds_what_kube_inject_adds(recorded: Path) -> None:
    review = _review(recorded)
    answer = review_admission(
        review, settings=SETTINGS, namespace_labels={"istio-injection": "enabled"}
    )
    patched = _patched(review, answer)

    posted = json.loads((recorded / "requests" / "pod-httpbin.json").read_text())
    (offline,) = inject_objects([posted], settings=SETTINGS, namespace="test")

    from_webhook = _added(review["request"]["object"], patched)
    from_kube_inject = _added(posted, offline)
    assert from_webhook == from_kube_inject
    assert set(from_webhook["containers"]) == {"istio-proxy"}
    assert set(from_webhook["initContainers"]) == {"istio-init"}
    proxy = from_webhook["containers"]["istio-proxy"]
    mounts = {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]}
    assert mounts["tls-secret"] == "/etc/istio/tls-certs/"
    assert mounts["tls-ca-secret"] == "/etc/istio/tls-ca-certs/"
    assert proxy["readinessProbe"]["httpGet"] == {
        "path": "/healthz/ready",
        "port": 15021,
        "scheme": "HTTP",
    }
    assert (
        from_webhook["volumes"]["istio-token"]["projected"]["sources"][0]["serviceAccountToken"][
            "audience"
        ]
        == "istio-ca"
    )
    assert {"tls-secret", "tls-ca-secret", "istiod-ca-cert"} <= set(from_webhook["volumes"])
    assert from_webhook["app"] is True
    # everything the API server defaulted stays as it was
    assert patched["spec"]["volumes"][0] == review["request"]["object"]["spec"]["volumes"][0]
    assert patched["spec"]["tolerations"] == review["request"]["object"]["spec"]["tolerations"]


def test_a_pod_with_only_generate_name_is_injected(recorded: Path) -> None:
    review = _review(recorded, "admission-review-request-pod-httpbin-generatename.json")
    assert "name" not in review["request"] and "name" not in review["request"]["object"]["metadata"]
    patched = _patched(review, review_admission(review, settings=SETTINGS, namespace_labels=None))
    assert [c["name"] for c in patched["spec"]["containers"]] == ["httpbin", "istio-proxy"]
    assert "name" not in patched["metadata"]


def test_opting_out_and_other_requests_are_allowed_untouched(recorded: Path) -> None:
    review = _review(recorded)
    review["request"]["object"]["metadata"]["annotations"]["sidecar.istio.io/inject"] = "false"
    answer = review_admission(review, settings=SETTINGS, namespace_labels=None)
    assert answer["response"] == {"uid": review["request"]["uid"], "allowed": True}
    plain = _review(recorded)
    assert (
        "patch"
        not in review_admission(
            plain, settings=SETTINGS, namespace_labels={"kubernetes.io/metadata.name": "test"}
        )["response"]
    )
    update = _review(recorded)
    update["request"]["operation"] = "UPDATE"
    assert "patch" not in review_admission(update, settings=SETTINGS)["response"]


def test_a_bad_user_volume_is_refused_with_its_reason(recorded: Path) -> None:
    review = _review(recorded)
    review["request"]["object"]["metadata"]["annotations"]["sidecar.istio.io/userVolume"] = "{"
    response = review_admission(review, settings=SETTINGS, namespace_labels=None)["response"]
    assert response["allowed"] is False
    assert "sidecar.istio.io/userVolume: invalid JSON" in response["status"]["message"]


def test_user_volumes_in_array_form_give_the_same_sidecar(recorded: Path) -> None:
    review = _review(recorded)
    annotations = review["request"]["object"]["metadata"]["annotations"]
    volumes = json.loads(annotations["sidecar.istio.io/userVolume"])
    mounts = json.loads(annotations["sidecar.istio.io/userVolumeMount"])
    as_arrays = copy.deepcopy(review)
    meta = as_arrays["request"]["object"]["metadata"]["annotations"]
    meta["sidecar.istio.io/userVolume"] = json.dumps(
        [{"name": n, **v} for n, v in sorted(volumes.items())]
    )
    meta["sidecar.istio.io/userVolumeMount"] = json.dumps(
        [{"name": n, **v} for n, v in sorted(mounts.items())]
    )
    one = _patched(review, review_admission(review, settings=SETTINGS))
    two = _patched(as_arrays, review_admission(as_arrays, settings=SETTINGS))
    assert one["spec"] == two["spec"]


def test_make_patch_round_trips_through_the_library() -> None:
    before = {"a": {"x/y": 1, "t~": [1, 2, 3]}, "b": [1, {"c": True}], "gone": None}
    after = {"a": {"x/y": 2, "t~": [1]}, "b": [1, {"c": 1}, {"d": []}], "new": "v"}
    patch = make_patch(before, after)
    assert jsonpatch.apply_patch(before, patch) == after
    assert make_patch(after, after) == []


def test_kube_inject_cli_injects_the_deployment_template(recorded: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["kube-inject", "-f", str(recorded / "scenario" / "httpbin.yaml")])
    assert code == 0
    documents = list(yaml.safe_load_all(out.getvalue()))
    assert [d["kind"] for d in documents] == ["ServiceAccount", "Service", "Deployment"]
    template = documents[2]["spec"]["template"]
    review = _review(recorded)
    patched = _patched(review, review_admission(review, settings=SETTINGS))
    proxy = [c for c in template["spec"]["containers"] if c["name"] == "istio-proxy"]
    assert proxy == [c for c in patched["spec"]["containers"] if c["name"] == "istio-proxy"]
    assert template["spec"]["initContainers"] == patched["spec"]["initContainers"]
    assert documents[0] == yaml.safe_load(
        (recorded / "scenario" / "httpbin.yaml").read_text().split("---")[0]
    )


def test_kube_inject_reports_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kube-inject", "-f", str(tmp_path / "absent.yaml")]) == 1
    assert "does not exist" in capsys.readouterr().err


async def test_the_webhook_serves_the_review_over_tls(recorded: Path) -> None:
    signer = make_self_signed_root(now=datetime.now(UTC))
    server = WebhookServer(
        SETTINGS, signer, namespace_labels=lambda ns: {"istio-injection": "enabled"}
    )
    port = await server.start("127.0.0.1", 0)
    try:
        context = ssl.create_default_context(cadata=signer.root_pem.decode())
        review = _review(recorded)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"https://127.0.0.1:{port}/inject?timeout=10s",
                data=(recorded / "admission-review-request-pod-httpbin.json").read_bytes(),
                headers={"Content-Type": "application/json"},
                ssl=context,
                server_hostname="istiod.istio-system.svc",
            ) as response:
                assert response.status == 200
                answer = await response.json()
            async with session.post(
                f"https://127.0.0.1:{port}/inject",
                data=b'{"kind": "Pod"}',
                ssl=context,
                server_hostname="istiod.istio-system.svc",
            ) as response:
                assert response.status == 400
                assert "not an AdmissionReview" in await response.text()
    finally:
        await server.stop()
    patched = _patched(review, answer)
    assert patched["spec"]["containers"][-1]["name"] == "istio-proxy"
    assert answer == review_admission(
        review, settings=SETTINGS, namespace_labels={"istio-injection": "enabled"}
    )
