"""A small schema language for the kinds meshlet reads, and the strict checker.

Theory of operation: each kind meshlet accepts is described once, in
``meshlet.resources.kinds``, with the types below: objects with named fields,
lists, maps, scalars (with enum values where the API has them), int-or-string, and
free-form values (``x-kubernetes-preserve-unknown-fields``, ``RawExtension``,
``google.protobuf.Struct``). ``check`` walks a decoded document against a type and
returns every problem it finds, as ``kubectl apply`` with strict field validation
does: an unknown field, a wrong type, an unsupported enum value or a missing
required field, each with its path (``spec.ports[1].selector``).

``null`` is accepted wherever a value is optional: Kubernetes reads it as unset,
and ``kubectl`` itself prints ``creationTimestamp: null``.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from meshlet.resources.yamlsource import Path

__all__ = [
    "BOOL",
    "FREE",
    "INT",
    "INT_OR_STRING",
    "NUMBER",
    "STRING",
    "Enum",
    "Free",
    "IntOrString",
    "ListOf",
    "MapOf",
    "Obj",
    "Problem",
    "Scalar",
    "SchemaType",
    "check",
    "format_path",
]


@dataclass(frozen=True, slots=True)
class Scalar:
    """``string``, ``integer``, ``number`` or ``boolean``."""

    type: str


@dataclass(frozen=True, slots=True)
class Enum:
    """A string restricted to ``values`` (an Istio enum, or a Kubernetes enum field)."""

    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IntOrString:
    """Kubernetes' ``int-or-string`` (ports given as numbers or names).

    With ``decimals`` a number with a fraction is accepted too: a ``resource.Quantity``
    (``cpu: 0.5``) is a string or any number.
    """

    decimals: bool = False


@dataclass(frozen=True, slots=True)
class Free:
    """Any JSON value: fields the API itself leaves unchecked."""


@dataclass(frozen=True, slots=True)
class ListOf:
    item: SchemaType


@dataclass(frozen=True, slots=True)
class MapOf:
    """An object with arbitrary keys, all with values of one type (labels, data)."""

    value: SchemaType


@dataclass(frozen=True, slots=True)
class Obj:
    """An object with known fields; any other field is an error.

    ``preserve_unknown`` is ``x-kubernetes-preserve-unknown-fields`` on an object
    that also lists fields (Istio's ``status``): the known fields are checked, others
    are kept as they are.
    """

    name: str
    fields: Mapping[str, SchemaType] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    preserve_unknown: bool = False


SchemaType = Scalar | Enum | IntOrString | Free | ListOf | MapOf | Obj

STRING: Final = Scalar("string")
INT: Final = Scalar("integer")
NUMBER: Final = Scalar("number")
BOOL: Final = Scalar("boolean")
INT_OR_STRING: Final = IntOrString()
FREE: Final = Free()


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document, at ``path``."""

    path: Path
    message: str


def format_path(path: Path) -> str:
    """``("spec", "ports", 1, "selector")`` → ``spec.ports[1].selector``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def check(value: Any, schema: SchemaType, path: Path = ()) -> list[Problem]:
    """Every problem of ``value`` against ``schema``, in document order."""
    problems: list[Problem] = []
    _check(value, schema, path, problems)
    return problems


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wrong_type(value: Any, expected: str, path: Path, problems: list[Problem]) -> None:
    problems.append(
        Problem(
            path,
            f'invalid type for "{format_path(path)}": expected {expected}, got {_type_name(value)}',
        )
    )


def _check(value: Any, schema: SchemaType, path: Path, problems: list[Problem]) -> None:
    if value is None or isinstance(schema, Free):
        return
    match schema:
        case Scalar(type="string"):
            if not isinstance(value, str):
                _wrong_type(value, "string", path, problems)
        case Scalar(type="integer"):
            if isinstance(value, bool) or not isinstance(value, int):
                _wrong_type(value, "integer", path, problems)
        case Scalar(type="number"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                _wrong_type(value, "number", path, problems)
        case Scalar(type="boolean"):
            if not isinstance(value, bool):
                _wrong_type(value, "boolean", path, problems)
        case Scalar():
            raise AssertionError(f"unknown scalar type {schema.type}")
        case Enum(values=values):
            if not isinstance(value, str):
                _wrong_type(value, "string", path, problems)
            elif value not in values:
                supported = ", ".join(f'"{v}"' for v in values)
                problems.append(
                    Problem(
                        path,
                        f'{format_path(path)}: Unsupported value: "{value}": '
                        f"supported values: {supported}",
                    )
                )
        case IntOrString(decimals=decimals):
            allowed = (int, float, str) if decimals else (int, str)
            if isinstance(value, bool) or not isinstance(value, allowed):
                _wrong_type(
                    value, "number or string" if decimals else "integer or string", path, problems
                )
        case ListOf(item=item):
            if not isinstance(value, list):
                _wrong_type(value, "array", path, problems)
                return
            for index, element in enumerate(value):
                _check(element, item, (*path, index), problems)
        case MapOf(value=item):
            if not isinstance(value, dict):
                _wrong_type(value, "object", path, problems)
                return
            for key, element in value.items():
                _check(element, item, (*path, key), problems)
        case Obj(fields=fields, required=required, preserve_unknown=preserve_unknown):
            if not isinstance(value, dict):
                _wrong_type(value, "object", path, problems)
                return
            for key, element in value.items():
                sub = fields.get(key)
                if sub is None:
                    if preserve_unknown:
                        continue
                    problems.append(
                        Problem((*path, key), f'unknown field "{format_path((*path, key))}"')
                    )
                    continue
                _check(element, sub, (*path, key), problems)
            for key in sorted(required):
                if value.get(key) is None:
                    problems.append(
                        Problem((*path, key), f"{format_path((*path, key))}: Required value")
                    )
