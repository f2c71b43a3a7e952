"""Loading resources from files, directories and stdin, strictly.

``decode_document`` (pure) turns one parsed document into resources, or into every
problem it has; ``load`` reads the sources and decodes all of them, so that one
mistake anywhere stops the whole input before anything acts on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from meshlet.errors import ErrorList, LoadError, Location, MeshletError, ObjectRef, SourceError
from meshlet.resources.kinds import lookup, supported_kinds
from meshlet.resources.objects import Resource
from meshlet.resources.schema import check, format_path
from meshlet.resources.yamlsource import Document, Path, parse_documents

__all__ = ["decode_document", "decode_text", "load", "read_sources"]

_SUFFIXES = (".yaml", ".yml", ".json")


def decode_document(document: Document) -> list[Resource]:
    """The resources of one document (several for a ``v1/List``); raises ``ErrorList``."""
    errors: list[MeshletError] = []
    resources = list(_decode(document, document.data, (), errors))
    if errors:
        raise ErrorList(errors)
    return resources


def _decode(
    document: Document, data: Any, path: Path, errors: list[MeshletError]
) -> Iterable[Resource]:
    where = document.location_of(path)
    if not isinstance(data, dict):
        errors.append(LoadError("a resource must be a YAML mapping", location=where))
        return
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if not api_version or not isinstance(api_version, str):
        errors.append(LoadError("apiVersion not set", location=where))
        return
    if not kind or not isinstance(kind, str):
        errors.append(LoadError("kind not set", location=where))
        return
    if api_version == "v1" and kind == "List":
        items = data.get("items") or []
        if not isinstance(items, list):
            errors.append(LoadError('"items" of a List must be a list', location=where))
            return
        for index, item in enumerate(items):
            yield from _decode(document, item, (*path, "items", index), errors)
        return
    info = lookup(api_version, kind)
    if info is None:
        errors.append(
            LoadError(
                f'no matches for kind "{kind}" in version "{api_version}"; '
                f"meshlet supports: {', '.join(supported_kinds())}",
                location=where,
            )
        )
        return
    raw_meta = data.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    ref = ObjectRef(kind, str(meta.get("name") or ""), meta.get("namespace") or None)
    problems = check(data, info.schema)
    for problem in problems:
        errors.append(
            LoadError(
                problem.message,
                location=document.location_of((*path, *problem.path)),
                resource=ref,
                field=format_path(problem.path),
            )
        )
    if not problems and not meta.get("name"):
        errors.append(
            LoadError(
                "metadata.name: Required value: name is required",
                location=document.location_of((*path, "metadata")),
                resource=ref,
                field="metadata.name",
            )
        )
    if errors:
        return
    namespace = (meta.get("namespace") or None) if info.namespaced else None
    yield Resource(info, api_version, data, document, namespace, path)


def decode_text(text: str, filename: str) -> list[Resource]:
    """Parse and decode every document of ``text``; raises ``ErrorList`` or ``LoadError``."""
    errors: list[MeshletError] = []
    resources: list[Resource] = []
    for document in parse_documents(text, filename):
        try:
            resources.extend(decode_document(document))
        except ErrorList as exc:
            errors.extend(exc.errors)
    if errors:
        raise ErrorList(errors)
    return resources


def read_sources(paths: Sequence[str], stdin: TextIO | None = None) -> list[tuple[str, str]]:
    """``(filename, text)`` for each path: a file, a directory (recursive) or ``-`` (stdin)."""
    sources: list[tuple[str, str]] = []
    for path in paths:
        if path == "-":
            if stdin is None:
                raise SourceError("reading from stdin is not possible here", location=Location("-"))
            sources.append(("-", stdin.read()))
        elif os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if name.endswith(_SUFFIXES):
                        sources.append(_read_file(os.path.join(root, name)))
        elif os.path.exists(path):
            sources.append(_read_file(path))
        else:
            raise SourceError(f'the path "{path}" does not exist')
    return sources


def _read_file(path: str) -> tuple[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return path, handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SourceError(f"cannot read {path}: {reason}") from None


def load(paths: Sequence[str], stdin: TextIO | None = None) -> list[Resource]:
    """Every resource of every source, or an error naming each problem; never a part."""
    errors: list[MeshletError] = []
    resources: list[Resource] = []
    for filename, text in read_sources(paths, stdin):
        try:
            resources.extend(decode_text(text, filename))
        except ErrorList as exc:
            errors.extend(exc.errors)
        except LoadError as exc:
            errors.append(exc)
    if errors:
        raise ErrorList(errors)
    if not resources:
        where = ", ".join(paths)
        raise LoadError(f"no objects passed: {where} holds no resources", location=Location(where))
    return resources
