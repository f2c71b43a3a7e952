"""meshlet's Kubernetes schemas against the OpenAPI v3 schemas the API server publishes.

The first test walks both side by side from each kind and compares, at every object
reached, the field names, each field's type, enum values and the required set. The
second builds, from the OpenAPI schema alone, a document that sets every field, and
checks that meshlet accepts it, refuses an extra field anywhere, and refuses a value
of the wrong type anywhere.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

import pytest

from meshlet.resources.kinds import KINDS, KindInfo, lookup
from meshlet.resources.schema import (
    BOOL,
    STRING,
    Enum,
    Free,
    IntOrString,
    ListOf,
    MapOf,
    Obj,
    Scalar,
    SchemaType,
    check,
    format_path,
)
from meshlet.resources.yamlsource import Path

OPENAPI_FILES = ("api__v1_openapi.json", "apis__apps__v1_openapi.json")

KUBERNETES_KINDS = [
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("v1", "Pod"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
]


class OpenAPI:
    """The components of the published documents, with ``$ref`` resolution."""

    def __init__(self, directory: FsPath) -> None:
        self.schemas: dict[str, Any] = {}
        self.paths: set[str] = set()
        for name in OPENAPI_FILES:
            document = json.loads((directory / "kubernetes-openapi" / name).read_text())
            self.schemas.update(document["components"]["schemas"])
            self.paths.update(document["paths"])

    def resolve(self, node: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """The named schema a property refers to (``$ref`` or a one-element ``allOf``)."""
        ref = node.get("$ref")
        if ref is None and len(node.get("allOf", ())) == 1:
            ref = node["allOf"][0].get("$ref")
        if ref is None:
            return None, node
        name = ref.rsplit("/", 1)[-1]
        return name, self.schemas[name]

    def root(self, info: KindInfo, version: str) -> tuple[str, dict[str, Any]]:
        wanted = {"group": info.group, "version": version, "kind": info.kind}
        for name, schema in self.schemas.items():
            if wanted in schema.get("x-kubernetes-group-version-kind", ()):
                return name, schema
        raise AssertionError(f"no OpenAPI schema for {info.kind}")

    def shape(self, node: dict[str, Any]) -> tuple[str, Any]:
        """A property reduced to meshlet's vocabulary: ``(kind, detail)``."""
        name, node = self.resolve(node)
        if node.get("format") == "int-or-string":
            return "int-or-string", None
        if "oneOf" in node:  # resource.Quantity: a string or a number
            kinds = {option.get("type") for option in node["oneOf"]}
            assert kinds == {"string", "number"}, (name, kinds)
            return "number-or-string", None
        kind = node.get("type")
        if kind == "array":
            return "array", node["items"]
        if kind == "object" or "properties" in node:
            if "properties" in node:
                return "object", (name, node)
            if "additionalProperties" in node:
                return "map", node["additionalProperties"]
            return "free", None
        if kind in ("string", "integer", "number", "boolean"):
            return kind, tuple(node["enum"]) if "enum" in node else None
        if kind is None and not node.get("properties"):
            return "free", None
        raise AssertionError(f"unexpected OpenAPI node {name}: {node}")


def meshlet_shape(schema: SchemaType) -> tuple[str, Any]:
    match schema:
        case Scalar(type=kind):
            return kind, None
        case Enum(values=values):
            return "string", values
        case IntOrString(decimals=True):
            return "number-or-string", None
        case IntOrString():
            return "int-or-string", None
        case Free():
            return "free", None
        case ListOf(item=item):
            return "array", item
        case MapOf(value=value):
            return "map", value
        case Obj():
            return "object", schema
    raise AssertionError(schema)


@pytest.fixture(scope="module")
def openapi(api_schemas: FsPath) -> OpenAPI:
    return OpenAPI(api_schemas)


def kind_info(api_version: str, kind: str) -> KindInfo:
    info = lookup(api_version, kind)
    assert info is not None, f"meshlet does not read {api_version}/{kind}"
    return info


# --- 1. the two schemas, side by side ---------------------------------------------------


def compare(
    openapi: OpenAPI, node: dict[str, Any], ours: SchemaType, path: str, seen: set[Any]
) -> Iterator[str]:
    """Every difference between an OpenAPI property and meshlet's type, as text."""
    theirs_kind, theirs = openapi.shape(node)
    our_kind, our = meshlet_shape(ours)
    if theirs_kind != our_kind:
        yield f"{path}: OpenAPI says {theirs_kind}, meshlet says {our_kind}"
        return
    if theirs_kind in ("array", "map"):
        yield from compare(openapi, theirs, our, f"{path}[]", seen)
    elif theirs_kind == "object":
        name, obj = theirs
        assert isinstance(our, Obj)
        key = (name, id(our))
        if key in seen:
            return
        seen.add(key)
        properties = obj.get("properties", {})
        missing = sorted(set(properties) - set(our.fields))
        extra = sorted(set(our.fields) - set(properties))
        if missing:
            yield f"{path} ({name}): meshlet lacks {missing}"
        if extra:
            yield f"{path} ({name}): meshlet has fields the API does not define: {extra}"
        if set(obj.get("required", ())) != set(our.required):
            yield (
                f"{path} ({name}): required {sorted(obj.get('required', ()))}, "
                f"meshlet {sorted(our.required)}"
            )
        for field_name in sorted(set(properties) & set(our.fields)):
            yield from compare(
                openapi,
                properties[field_name],
                our.fields[field_name],
                f"{path}.{field_name}",
                seen,
            )
    elif theirs != our:
        yield f"{path}: enum values {theirs}, meshlet {our}"


@pytest.mark.parametrize(("api_version", "kind"), KUBERNETES_KINDS)
def test_schema_matches_openapi(openapi: OpenAPI, api_version: str, kind: str) -> None:
    info = kind_info(api_version, kind)
    version = api_version.rsplit("/", 1)[-1]
    name, root = openapi.root(info, version)
    differences = list(compare(openapi, {"$ref": f"#/{name}"}, info.schema, kind, set()))
    assert differences == []
    assert root.get("x-kubernetes-group-version-kind")


def test_the_comparison_sees_every_kind_of_difference(openapi: OpenAPI) -> None:
    info = kind_info("v1", "Service")
    spec = info.schema.fields["spec"]
    assert isinstance(spec, Obj)
    ports = spec.fields["ports"]
    assert isinstance(ports, ListOf) and isinstance(ports.item, Obj)
    port_fields = dict(ports.item.fields)
    del port_fields["appProtocol"]
    port_fields["port"] = STRING
    port_fields["protocol"] = Enum(("TCP", "UDP"))
    port_fields["bogus"] = BOOL
    bad_port = replace(ports.item, fields=port_fields, required=frozenset())
    bad_spec = replace(spec, fields={**spec.fields, "ports": ListOf(bad_port)})
    bad = replace(info.schema, fields={**info.schema.fields, "spec": bad_spec})
    name, _ = openapi.root(info, "v1")
    differences = list(compare(openapi, {"$ref": f"#/{name}"}, bad, "Service", set()))
    assert sorted(differences) == [
        "Service.spec.ports[] (io.k8s.api.core.v1.ServicePort): meshlet has fields the API "
        "does not define: ['bogus']",
        "Service.spec.ports[] (io.k8s.api.core.v1.ServicePort): meshlet lacks ['appProtocol']",
        "Service.spec.ports[] (io.k8s.api.core.v1.ServicePort): required ['port'], meshlet []",
        "Service.spec.ports[].port: OpenAPI says integer, meshlet says string",
        "Service.spec.ports[].protocol: enum values None, meshlet ('TCP', 'UDP')",
    ]


@pytest.mark.parametrize(("api_version", "kind"), KUBERNETES_KINDS)
def test_kind_info_matches_the_api_paths(openapi: OpenAPI, api_version: str, kind: str) -> None:
    info = kind_info(api_version, kind)
    prefix = "/api/v1" if not info.group else f"/apis/{info.group}/{info.versions[0]}"
    namespaced_path = f"{prefix}/namespaces/{{namespace}}/{info.plural}"
    cluster_path = f"{prefix}/{info.plural}/{{name}}"
    assert (namespaced_path in openapi.paths) is info.namespaced
    assert (cluster_path in openapi.paths) is not info.namespaced


def test_short_names_match_discovery(api_schemas: FsPath) -> None:
    document = json.loads((api_schemas / "kubernetes-api" / "discovery-api-v1.json").read_text())
    published = {
        resource["name"]: (
            resource["kind"],
            resource["namespaced"],
            set(resource.get("shortNames", ())),
        )
        for resource in document["resources"]
    }
    for api_version, kind in KUBERNETES_KINDS:
        if api_version == "v1":
            info = kind_info(api_version, kind)
            assert published[info.plural] == (kind, info.namespaced, set(info.short_names))
    assert kind_info("apps/v1", "Deployment").short_names == ("deploy",)


def test_every_kubernetes_kind_is_registered() -> None:
    registered = {(api, info.kind) for info in KINDS for api in info.api_versions}
    assert set(KUBERNETES_KINDS) <= registered


# --- 2. a document with every field ------------------------------------------------------


class Generator:
    """Builds a value for an OpenAPI node that sets every field, and records the paths.

    ``objects`` are the paths of objects with known fields (where an extra field must
    be refused), ``leaves`` the paths of scalars with the kind of value each holds.
    """

    def __init__(self, openapi: OpenAPI) -> None:
        self.openapi = openapi
        self.objects: list[Path] = []
        self.containers: list[tuple[Path, str]] = []
        self.leaves: list[tuple[Path, str]] = []

    def value(self, node: dict[str, Any], path: Path, depth: int = 0) -> Any:
        assert depth < 40, f"recursion at {format_path(path)}"
        kind, detail = self.openapi.shape(node)
        if kind == "object":
            _, obj = detail
            self.objects.append(path)
            self.containers.append((path, kind))
            return {
                name: self.value(prop, (*path, name), depth + 1)
                for name, prop in sorted(obj.get("properties", {}).items())
            }
        if kind == "array":
            self.containers.append((path, kind))
            return [self.value(detail, (*path, 0), depth + 1)]
        if kind == "map":
            self.containers.append((path, kind))
            return {"some-key": self.value(detail, (*path, "some-key"), depth + 1)}
        self.leaves.append((path, kind))
        return SAMPLE[kind] if detail is None else detail[0]


SAMPLE: dict[str, Any] = {
    "string": "text",
    "integer": 7,
    "number": 1.5,
    "boolean": True,
    "int-or-string": "http",
    "number-or-string": 0.5,
    "free": {"anything": ["goes", 1, {"here": None}]},
}

WRONG: dict[str, Any] = {
    "string": 5,
    "integer": "seven",
    "number": "one and a half",
    "boolean": "yes",
    "int-or-string": 1.5,
    "number-or-string": [1],
    "array": "not a list",
    "map": ["not", "a", "map"],
    "object": 12,
}

EXPECTED_NAME: dict[str, str] = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "int-or-string": "integer or string",
    "number-or-string": "number or string",
    "array": "array",
    "map": "object",
    "object": "object",
}


def full_document(openapi: OpenAPI, api_version: str, kind: str) -> tuple[Any, Generator]:
    info = kind_info(api_version, kind)
    name, _ = openapi.root(info, api_version.rsplit("/", 1)[-1])
    generator = Generator(openapi)
    document = generator.value({"$ref": f"#/{name}"}, ())
    document["apiVersion"] = api_version
    document["kind"] = kind
    return document, generator


def set_at(document: Any, path: Path, value: Any) -> None:
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def get_at(document: Any, path: Path) -> Any:
    for part in path:
        document = document[part]
    return document


@pytest.mark.parametrize(("api_version", "kind"), KUBERNETES_KINDS)
def test_a_document_with_every_field_is_accepted(
    openapi: OpenAPI, api_version: str, kind: str
) -> None:
    document, generator = full_document(openapi, api_version, kind)
    assert check(document, kind_info(api_version, kind).schema) == []
    assert len(generator.leaves) > 3


@pytest.mark.parametrize(("api_version", "kind"), KUBERNETES_KINDS)
def test_an_extra_field_is_refused_at_every_object(
    openapi: OpenAPI, api_version: str, kind: str
) -> None:
    document, generator = full_document(openapi, api_version, kind)
    for path in generator.objects:
        get_at(document, path)["notAField"] = "x"
    problems = check(document, kind_info(api_version, kind).schema)
    expected = sorted(
        f'unknown field "{format_path((*path, "notAField"))}"' for path in generator.objects
    )
    assert sorted(problem.message for problem in problems) == expected
    assert {problem.path[-1] for problem in problems} == {"notAField"}


@pytest.mark.parametrize(("api_version", "kind"), KUBERNETES_KINDS)
def test_a_wrong_type_is_refused_at_every_scalar(
    openapi: OpenAPI, api_version: str, kind: str
) -> None:
    document, generator = full_document(openapi, api_version, kind)
    # a wrong type everywhere at once: one problem per scalar field
    leaves = [(path, leaf_kind) for path, leaf_kind in generator.leaves if leaf_kind != "free"]
    for path, leaf_kind in leaves:
        set_at(document, path, WRONG[leaf_kind])
    problems = check(document, kind_info(api_version, kind).schema)
    assert len(problems) == len(leaves)
    by_path = {problem.path: problem.message for problem in problems}
    for path, leaf_kind in leaves:
        assert by_path[path].startswith(
            f'invalid type for "{format_path(path)}": expected {EXPECTED_NAME[leaf_kind]}, got '
        )


@pytest.mark.parametrize(("api_version", "kind"), KUBERNETES_KINDS)
def test_a_wrong_type_is_refused_for_objects_lists_and_maps(
    openapi: OpenAPI, api_version: str, kind: str
) -> None:
    pristine, generator = full_document(openapi, api_version, kind)
    schema = kind_info(api_version, kind).schema
    containers = [(path, k) for path, k in generator.containers if path]
    # about thirty of them, always the last one too, keeps this fast
    sample = containers[:: max(1, len(containers) // 30)] + containers[-1:]
    assert len(sample) >= 2
    for path, container_kind in sample:
        document = copy.deepcopy(pristine)
        set_at(document, path, WRONG[container_kind])
        messages = [problem.message for problem in check(document, schema)]
        assert messages == [
            f'invalid type for "{format_path(path)}": expected {EXPECTED_NAME[container_kind]}, '
            f"got {type_name(WRONG[container_kind])}"
        ], format_path(path)


def type_name(value: Any) -> str:
    return {str: "string", int: "integer", list: "array", float: "number"}[type(value)]
