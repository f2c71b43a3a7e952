"""Reading YAML and JSON documents while remembering the line of every value.

Theory of operation: PyYAML's composer gives a node tree whose nodes carry their
start marks. We turn that tree into plain Python values ourselves, so that every
value's path (``("spec", "ports", 1, "selector")``) maps to its 1-based line.
Scalars follow YAML 1.1's core types as Kubernetes reads them, except timestamps,
which stay strings (Kubernetes decodes them itself). Duplicate keys are refused, as
``kubectl``'s strict decoding refuses them.

Pure: this module parses text it is given; reading files lives in ``loader``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from meshlet.errors import LoadError, Location

__all__ = ["Document", "Path", "parse_documents"]

Path = tuple[str | int, ...]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: its value, where it starts, and the line of each path in it."""

    data: Any
    location: Location
    lines: dict[Path, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return self.location.line

    def location_of(self, path: Path) -> Location:
        return Location(self.location.file, self.line_of(path))


def parse_documents(text: str, filename: str) -> list[Document]:
    """Parse every non-empty document of ``text``; ``filename`` is used in messages."""
    constructor = yaml.SafeLoader("")
    documents: list[Document] = []
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None:
                continue
            lines: dict[Path, int] = {}
            value = _build(node, (), lines, constructor, filename)
            if value is None:
                continue
            documents.append(Document(value, Location(filename, node.start_mark.line + 1), lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise LoadError(f"invalid YAML: {problem}", location=Location(filename, line)) from None
    except yaml.YAMLError as exc:
        raise LoadError(f"invalid YAML: {exc}", location=Location(filename)) from None
    return documents


def _build(
    node: yaml.Node,
    path: Path,
    lines: dict[Path, int],
    constructor: yaml.SafeLoader,
    filename: str,
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise LoadError(
                    "invalid YAML: mapping keys must be scalars",
                    location=Location(filename, key_node.start_mark.line + 1),
                )
            name = str(key_node.value)
            if name in result:
                where = ".".join(str(p) for p in (*path, name))
                raise LoadError(
                    f'duplicate field "{where}"',
                    location=Location(filename, key_node.start_mark.line + 1),
                )
            result[name] = _build(value_node, (*path, name), lines, constructor, filename)
            lines[(*path, name)] = key_node.start_mark.line + 1  # a field is where its key is
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, index), lines, constructor, filename)
            for index, item in enumerate(node.value)
        ]
    return _scalar(node, constructor)


def _scalar(node: yaml.Node, constructor: yaml.SafeLoader) -> Any:
    tag = node.tag
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return constructor.construct_yaml_bool(node)  # type: ignore[arg-type]
    if tag == _INT:
        return constructor.construct_yaml_int(node)  # type: ignore[arg-type]
    if tag == _FLOAT:
        return constructor.construct_yaml_float(node)  # type: ignore[arg-type]
    return str(node.value)


def iter_paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path inside ``value`` (used by tests and by the schema checker's messages)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from iter_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_paths(item, (*prefix, index))
