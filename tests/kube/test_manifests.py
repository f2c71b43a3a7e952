"""The generated manifests against the published schemas.

Core and apps objects are checked against the v1.36 OpenAPI v3 documents the API
server publishes (every field known, every type right, every required field set);
the CRDs against Istio's own (the same fields, types, enums, maps, lists and required
sets at every level, for every served version); the webhook configuration against the
one the API server stored in the recording.
"""

from __future__ import annotations

import base64
import io
import json
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshlet.ca.signing import load_plugin_ca, make_self_signed_root
from meshlet.cli.main import main
from meshlet.kube.manifests import generate_manifests
from meshlet.kube.settings import kube_settings_from_flags

SIGNER = make_self_signed_root(now=datetime(2026, 3, 1, tzinfo=UTC))
FLAGS = ["values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true", "values.global.hub=example.com/me"]
OBJECTS = generate_manifests(kube_settings_from_flags(FLAGS), SIGNER, set_flags=FLAGS)


class OpenAPI:
    def __init__(self, directory: Path) -> None:
        self.schemas: dict[str, Any] = {}
        for name in ("api__v1_openapi.json", "apis__apps__v1_openapi.json"):
            document = json.loads((directory / "kubernetes-openapi" / name).read_text())
            self.schemas.update(document["components"]["schemas"])

    def root(self, api_version: str, kind: str) -> dict[str, Any]:
        group, _, version = api_version.rpartition("/")
        wanted = {"group": group, "version": version, "kind": kind}
        for schema in self.schemas.values():
            if wanted in schema.get("x-kubernetes-group-version-kind", ()):
                return schema  # type: ignore[no-any-return]
        raise AssertionError(f"no published schema for {api_version} {kind}")

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if ref is None and len(node.get("allOf", ())) == 1:
            ref = node["allOf"][0].get("$ref")
        return self.schemas[ref.rsplit("/", 1)[-1]] if ref else node

    def problems(self, value: Any, node: dict[str, Any], path: str = "") -> list[str]:
        node = self.resolve(node)
        if node.get("x-kubernetes-int-or-string"):
            ok = isinstance(value, int | str) and not isinstance(value, bool)
            return [] if ok else [f"{path}: want int or string"]
        kind = node.get("type")
        if kind == "object" or "properties" in node:
            if not isinstance(value, dict):
                return [f"{path}: want an object"]
            found: list[str] = []
            properties = node.get("properties")
            if properties is None:
                extra = node.get("additionalProperties")
                for key, item in value.items():
                    if isinstance(extra, dict):
                        found += self.problems(item, extra, f"{path}.{key}")
                return found
            for key, item in value.items():
                if key not in properties:
                    found.append(f"{path}.{key}: unknown field")
                else:
                    found += self.problems(item, properties[key], f"{path}.{key}")
            found += [
                f"{path}.{key}: required" for key in node.get("required", ()) if key not in value
            ]
            return found
        if kind == "array":
            if not isinstance(value, list):
                return [f"{path}: want an array"]
            return [
                p
                for i, item in enumerate(value)
                for p in self.problems(item, node["items"], f"{path}[{i}]")
            ]
        checks = {"string": str, "integer": int, "boolean": bool, "number": int | float}
        if kind in checks and (
            not isinstance(value, checks[kind]) or (kind != "boolean" and isinstance(value, bool))
        ):
            return [f"{path}: want {kind}, got {value!r}"]
        if "enum" in node and value not in node["enum"]:
            return [f"{path}: {value!r} not in {node['enum']}"]
        return []


@pytest.fixture(scope="module")
def openapi(api_schemas: Path) -> OpenAPI:
    return OpenAPI(api_schemas)


def test_core_and_apps_objects_match_the_published_openapi(openapi: OpenAPI) -> None:
    checked = []
    for obj in OBJECTS:
        if obj["apiVersion"] not in ("v1", "apps/v1"):
            continue
        assert openapi.problems(obj, openapi.root(obj["apiVersion"], obj["kind"])) == [], obj[
            "kind"
        ]
        checked.append(f"{obj['kind']}/{obj['metadata']['name']}")
    assert checked == [
        "Namespace/istio-system",
        "ServiceAccount/istiod",
        "Secret/cacerts",
        "ConfigMap/istio-ca-root-cert",
        "ConfigMap/istio-ca-root-cert",
        "Deployment/istiod",
        "Service/istiod",
    ]


def test_the_checker_itself_refuses_a_wrong_manifest(openapi: OpenAPI) -> None:
    deployment = json.loads(json.dumps(next(o for o in OBJECTS if o["kind"] == "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["portz"] = []
    deployment["spec"]["replicas"] = "1"
    found = openapi.problems(deployment, openapi.root("apps/v1", "Deployment"))
    assert ".spec.template.spec.containers[0].portz: unknown field" in found
    assert any(p.startswith(".spec.replicas: want integer") for p in found)


def _shape(node: dict[str, Any]) -> Any:
    """A schema reduced to what must agree: types, fields, enums, required sets."""
    if node.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    out: dict[str, Any] = {"type": node.get("type")}
    if "enum" in node:
        out["enum"] = sorted(node["enum"])
    if "properties" in node:
        out["properties"] = {k: _shape(v) for k, v in node["properties"].items()}
    if "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
        out["additionalProperties"] = _shape(node["additionalProperties"])
    if "items" in node:
        out["items"] = _shape(node["items"])
    if node.get("required"):
        out["required"] = sorted(node["required"])
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        out = {"preserve": True}
    return out


def test_the_crds_match_istios_published_ones(api_schemas: Path) -> None:
    published = {
        crd["metadata"]["name"]: crd
        for crd in yaml.safe_load_all((api_schemas / "istio-crds.yaml").read_text())
        if crd
    }
    ours = {o["metadata"]["name"]: o for o in OBJECTS if o["kind"] == "CustomResourceDefinition"}
    assert set(ours) == set(published)
    for name, crd in ours.items():
        theirs = published[name]["spec"]
        spec = crd["spec"]
        assert spec["group"] == theirs["group"] and spec["scope"] == theirs["scope"]
        assert spec["names"] == theirs["names"], name
        their_versions = {v["name"]: v for v in theirs["versions"]}
        assert {v["name"] for v in spec["versions"]} == set(their_versions)
        for version in spec["versions"]:
            other = their_versions[version["name"]]
            assert (version["served"], version["storage"]) == (other["served"], other["storage"])
            assert version["subresources"] == other["subresources"]
            mine = _shape(version["schema"]["openAPIV3Schema"])
            assert mine == _shape(other["schema"]["openAPIV3Schema"]), (name, version["name"])


def test_the_webhook_configuration_has_what_the_api_server_stored(api_schemas: Path) -> None:
    stored = json.loads(
        (
            api_schemas / "kubernetes-api" / "admission-create-mutatingwebhookconfiguration.json"
        ).read_text()
    )
    ours = next(o for o in OBJECTS if o["kind"] == "MutatingWebhookConfiguration")
    reference = stored["webhooks"][0]
    for webhook in ours["webhooks"]:
        assert set(webhook) == set(reference), webhook["name"]
        assert set(webhook["rules"][0]) == set(reference["rules"][0])
        assert webhook["rules"] == reference["rules"]
        for field in (
            "failurePolicy",
            "matchPolicy",
            "reinvocationPolicy",
            "sideEffects",
            "timeoutSeconds",
            "admissionReviewVersions",
        ):
            assert webhook[field] == reference[field], field
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == SIGNER.root_pem
        assert webhook["clientConfig"]["service"] == {
            "name": "istiod",
            "namespace": "istio-system",
            "path": "/inject",
            "port": 443,
        }


def test_the_ca_secret_loads_as_istios_plugin_ca() -> None:
    secret = next(o for o in OBJECTS if o["kind"] == "Secret")
    files = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    loaded = load_plugin_ca(files)
    assert loaded.root == SIGNER.root
    deployment = next(o for o in OBJECTS if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example.com/me/meshlet:0.1.0"
    assert container["args"][-2:] == ["--set", "values.global.hub=example.com/me"]


def test_manifest_generate_prints_them_all(tmp_path: Path) -> None:
    for name, data in (
        ("ca-cert.pem", SIGNER.certificate_pem),
        ("ca-key.pem", SIGNER.key_pem),
        ("root-cert.pem", SIGNER.root_pem),
    ):
        (tmp_path / name).write_bytes(data)
    out = io.StringIO()
    with redirect_stdout(out):
        assert (
            main(
                [
                    "manifest",
                    "generate",
                    "--ca-dir",
                    str(tmp_path),
                    *[arg for flag in FLAGS for arg in ("--set", flag)],
                ]
            )
            == 0
        )
    assert list(yaml.safe_load_all(out.getvalue())) == OBJECTS
