"""What a user types for a resource type, resolved as kubectl resolves it.

kubectl accepts, case-insensitively, a kind's plural (``pods``), singular (``pod``),
short names (``po``, ``svc``, ``deploy``, ``pa``, ``dr``) and each of them qualified
by the API group (``deployment.apps``, ``sidecars.networking.istio.io``) or by
version and group (``deployments.v1.apps``). Several types may be joined with
commas (``pods,svc``). Objects are named either ``TYPE NAME…`` or ``TYPE/NAME…``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshlet.kubectl.messages import (
    KubectlError,
    name_prefix,
    qualified_resource,
    unknown_resource_type,
)
from meshlet.resources.kinds import KINDS, KindInfo

__all__ = [
    "ResourceArg",
    "name_prefix",
    "parse_resource_args",
    "qualified_resource",
    "resolve_type",
    "resolve_types",
]


def _spellings(info: KindInfo) -> Iterable[str]:
    return (info.plural, info.kind.lower(), *info.short_names)


def _build_index(kinds: Iterable[KindInfo]) -> dict[str, KindInfo]:
    index: dict[str, KindInfo] = {}
    for info in kinds:
        for spelling in _spellings(info):
            index.setdefault(spelling, info)
            if info.group:
                index.setdefault(f"{spelling}.{info.group}", info)
                for version in info.versions:
                    index.setdefault(f"{spelling}.{version}.{info.group}", info)
            else:
                for version in info.versions:
                    index.setdefault(f"{spelling}.{version}", info)
    return index


_INDEX = _build_index(KINDS)


def resolve_type(text: str) -> KindInfo:
    """The kind a user means by ``text`` (``po``, ``deployment.apps`` …)."""
    info = _INDEX.get(text.strip().lower())
    if info is None:
        raise unknown_resource_type(text)
    return info


def resolve_types(text: str) -> list[KindInfo]:
    """Comma-separated types (``pods,svc``), in the order given, without repeats."""
    found: list[KindInfo] = []
    for part in text.split(","):
        if not part:
            continue
        info = resolve_type(part)
        if info not in found:
            found.append(info)
    if not found:
        raise unknown_resource_type(text)
    return found


@dataclass(frozen=True, slots=True)
class ResourceArg:
    """One type, and the names asked for (empty: every object of the type)."""

    info: KindInfo
    names: tuple[str, ...] = ()


def parse_resource_args(args: Sequence[str]) -> list[ResourceArg]:
    """The objects meant by ``get``/``delete``/``describe`` arguments.

    ``["pods"]``, ``["pod", "a", "b"]``, ``["pods,svc"]``, ``["pod/a", "svc/b"]``.
    """
    if not args:
        raise KubectlError(
            "You must provide one or more resources by argument or filename.\n"
            "Example resource specifications include:\n"
            "   '-f rsrc.yaml'\n"
            "   '--filename=rsrc.json'\n"
            "   '<resource> <name>'\n"
            "   '<resource>'"
        )
    if any("/" in arg for arg in args):
        if not all("/" in arg for arg in args):
            raise KubectlError(
                "there is no need to specify a resource type as a separate argument when "
                "passing arguments in resource/name form (e.g. 'kubectl get resource/"
                "<resource_name>' instead of 'kubectl get resource resource/<resource_name>'"
            )
        result: list[ResourceArg] = []
        for arg in args:
            parts = arg.split("/")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise KubectlError(
                    "arguments in resource/name form must have a single resource and name"
                )
            info = resolve_type(parts[0])
            if result and result[-1].info == info:
                result[-1] = ResourceArg(info, (*result[-1].names, parts[1]))
            else:
                result.append(ResourceArg(info, (parts[1],)))
        return result
    names = tuple(args[1:])
    return [ResourceArg(info, names) for info in resolve_types(args[0])]
