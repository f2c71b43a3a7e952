"""meshlet's Istio schemas against Istio's published CRDs.

For every served version of Sidecar, PeerAuthentication and DestinationRule, the
CRD's openAPIV3Schema and meshlet's schema are walked side by side: the same field
names at every object, the same types, the same enum values, the same maps, lists,
int-or-strings and preserved-unknown objects, the same required fields (save the
few meshlet leaves to Istio's validation messages). Then a document that sets every
field the CRD defines is accepted, and an extra field or a wrong type at each object
and leaf is refused with its path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshlet.resources.kinds import lookup
from meshlet.resources.kinds.istio import KINDS, OPTIONAL_IN_MESHLET
from meshlet.resources.loader import decode_text
from meshlet.resources.schema import (
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

_TOP_LEVEL = {"apiVersion", "kind", "metadata"}


def _crd_versions(api_schemas: Path) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    with open(api_schemas / "istio-crds.yaml", encoding="utf-8") as handle:
        for crd in yaml.safe_load_all(handle):
            if not crd:
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                yield (
                    spec["group"],
                    version["name"],
                    spec["names"]["kind"],
                    version["schema"]["openAPIV3Schema"],
                )


@pytest.fixture(scope="module")
def crds(api_schemas: Path) -> list[tuple[str, str, str, dict[str, Any]]]:
    found = list(_crd_versions(api_schemas))
    assert {kind for _, _, kind, _ in found} == {
        "Sidecar",
        "PeerAuthentication",
        "DestinationRule",
    }
    return found


def _is_int_or_string(crd: dict[str, Any]) -> bool:
    return bool(crd.get("x-kubernetes-int-or-string"))


def _compare(kind: str, crd: dict[str, Any], ours: SchemaType, path: str) -> list[str]:
    """Every difference between a CRD schema node and meshlet's, as readable lines."""
    where = path or "<root>"
    if _is_int_or_string(crd):
        return [] if isinstance(ours, IntOrString) else [f"{where}: expected int-or-string"]
    crd_type = crd.get("type")
    if crd_type == "object":
        if "properties" in crd:
            return _compare_object(kind, crd, ours, path)
        extra = crd.get("additionalProperties")
        if isinstance(extra, dict):
            if not isinstance(ours, MapOf):
                return [f"{where}: expected a map, meshlet has {type(ours).__name__}"]
            return _compare(kind, extra, ours.value, f"{path}{{}}")
        if crd.get("x-kubernetes-preserve-unknown-fields"):
            return [] if isinstance(ours, Free) else [f"{where}: expected free-form"]
        return [f"{where}: object without properties in the CRD"]
    if crd_type == "array":
        if not isinstance(ours, ListOf):
            return [f"{where}: expected a list, meshlet has {type(ours).__name__}"]
        return _compare(kind, crd["items"], ours.item, f"{path}[]")
    if "enum" in crd:
        if not isinstance(ours, Enum):
            return [f"{where}: expected enum {crd['enum']}"]
        if list(ours.values) != list(crd["enum"]):
            return [f"{where}: enum {list(ours.values)} != {crd['enum']}"]
        return []
    if crd_type in {"string", "integer", "number", "boolean"}:
        if isinstance(ours, Scalar) and ours.type == crd_type:
            return []
        return [f"{where}: expected {crd_type}, meshlet has {ours}"]
    return [f"{where}: CRD type {crd_type!r} not understood"]


def _compare_object(kind: str, crd: dict[str, Any], ours: SchemaType, path: str) -> list[str]:
    where = path or "<root>"
    if not isinstance(ours, Obj):
        return [f"{where}: expected an object, meshlet has {type(ours).__name__}"]
    problems: list[str] = []
    crd_fields = set(crd["properties"])
    our_fields = set(ours.fields) - (_TOP_LEVEL if not path else set())
    if crd_fields != our_fields:
        problems.append(
            f"{where}: fields differ: only in CRD {sorted(crd_fields - our_fields)}, "
            f"only in meshlet {sorted(our_fields - crd_fields)}"
        )
    preserve = bool(crd.get("x-kubernetes-preserve-unknown-fields"))
    if preserve != ours.preserve_unknown:
        problems.append(f"{where}: preserve-unknown-fields {preserve} != {ours.preserve_unknown}")
    crd_required = set(crd.get("required", ()))
    left_to_istio = {field for k, p, field in OPTIONAL_IN_MESHLET if k == kind and p == path}
    if crd_required - left_to_istio != set(ours.required):
        problems.append(f"{where}: required {sorted(crd_required)} != {sorted(ours.required)}")
    for name in sorted(crd_fields & our_fields):
        sub = f"{path}.{name}" if path else name
        problems.extend(_compare(kind, crd["properties"][name], ours.fields[name], sub))
    return problems


def test_every_crd_version_is_served_with_the_same_schema(crds: list[Any]) -> None:
    for group, version, kind, schema in crds:
        info = lookup(f"{group}/{version}", kind)
        assert info is not None, f"{group}/{version} {kind} is not served"
        assert _compare(kind, schema, info.schema, "") == []


def test_meshlet_serves_no_version_the_crds_lack(crds: list[Any]) -> None:
    published = {(f"{group}/{version}", kind) for group, version, kind, _ in crds}
    ours = {(api, info.kind) for info in KINDS for api in info.api_versions}
    assert ours == published


# --- generated documents ---------------------------------------------------------------


def _full_value(crd: dict[str, Any]) -> Any:
    """A value setting every field the CRD node defines, of the right type."""
    if _is_int_or_string(crd):
        return 3
    crd_type = crd.get("type")
    if crd_type == "object":
        if "properties" in crd:
            return {name: _full_value(sub) for name, sub in crd["properties"].items()}
        extra = crd.get("additionalProperties")
        if isinstance(extra, dict):
            return {"8080": _full_value(extra)}
        return {"anything": {"goes": [1, "here"]}}
    if crd_type == "array":
        return [_full_value(crd["items"])]
    if "enum" in crd:
        return crd["enum"][-1]
    return {"string": "5s", "integer": 7, "number": 1.5, "boolean": True}[crd_type]


def _document(group: str, version: str, kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    body = _full_value(schema)
    return {
        "apiVersion": f"{group}/{version}",
        "kind": kind,
        "metadata": {"name": "everything", "namespace": "test"},
        **body,
    }


def test_a_document_setting_every_field_is_accepted(crds: list[Any]) -> None:
    for group, version, kind, schema in crds:
        document = _document(group, version, kind, schema)
        text = yaml.safe_dump(document, sort_keys=False)
        (resource,) = decode_text(text, f"{kind}.yaml")
        assert resource.body == document
        assert resource.namespace == "test"


def _nodes(
    crd: dict[str, Any], path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every node of the generated document with the CRD node that describes it."""
    yield path, crd
    if _is_int_or_string(crd):
        return
    if crd.get("type") == "object" and "properties" in crd:
        for name, sub in crd["properties"].items():
            yield from _nodes(sub, (*path, name))
    elif crd.get("type") == "object" and isinstance(crd.get("additionalProperties"), dict):
        yield from _nodes(crd["additionalProperties"], (*path, "8080"))
    elif crd.get("type") == "array":
        yield from _nodes(crd["items"], (*path, 0))


def _set(document: Any, path: tuple[str | int, ...], value: Any) -> None:
    for part in path[:-1]:
        document = document[part]
    document[path[-1]] = value


def _wrong_value(crd: dict[str, Any]) -> Any:
    if _is_int_or_string(crd):
        return [1]
    return {
        "object": "not an object",
        "array": {"not": "a list"},
        "string": 12,
        "integer": "twelve",
        "number": "1.5",
        "boolean": "yes",
    }[crd["type"]]


def test_an_extra_field_is_refused_at_every_object(crds: list[Any]) -> None:
    checked = 0
    for group, version, kind, schema in crds:
        info = lookup(f"{group}/{version}", kind)
        assert info is not None
        for path, node in _nodes(schema, ()):
            if node.get("type") != "object" or "properties" not in node:
                continue
            document = _document(group, version, kind, schema)
            target = document
            for part in path:
                target = target[part]
            target["notAField"] = 1
            problems = check(document, info.schema)
            if node.get("x-kubernetes-preserve-unknown-fields"):
                assert problems == [], path  # status keeps what it does not know
                continue
            field = format_path((*path, "notAField"))
            assert [p.message for p in problems] == [f'unknown field "{field}"']
            checked += 1
    assert checked > 100


def test_a_wrong_type_is_refused_at_every_node(crds: list[Any]) -> None:
    checked = 0
    for group, version, kind, schema in crds:
        info = lookup(f"{group}/{version}", kind)
        assert info is not None
        for path, node in _nodes(schema, ()):
            if not path:
                continue
            document = _document(group, version, kind, schema)
            _set(document, path, _wrong_value(node))
            problems = check(document, info.schema)
            assert [p.path for p in problems] == [path], format_path(path)
            assert format_path(path) in problems[0].message
            checked += 1
    assert checked > 500


def test_an_unsupported_enum_value_names_the_supported_ones(crds: list[Any]) -> None:
    for group, version, kind, schema in crds:
        if kind != "Sidecar":
            continue
        info = lookup(f"{group}/{version}", kind)
        assert info is not None
        document = _document(group, version, kind, schema)
        document["spec"]["ingress"][0]["tls"]["mode"] = "STRICT"
        (problem,) = check(document, info.schema)
        assert problem.message == (
            'spec.ingress[0].tls.mode: Unsupported value: "STRICT": supported values: '
            '"PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", '
            '"OPTIONAL_MUTUAL"'
        )
