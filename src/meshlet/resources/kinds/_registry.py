from __future__ import annotations

from dataclasses import dataclass

from meshlet.resources.schema import Obj

__all__ = ["KindInfo"]


@dataclass(frozen=True, slots=True)
class KindInfo:
    """One kind: its API group and served versions, names, scope and schema."""

    group: str  # "" for the core group
    versions: tuple[str, ...]
    kind: str
    plural: str
    namespaced: bool
    schema: Obj  # the whole object: apiVersion, kind, metadata, spec, status …
    short_names: tuple[str, ...] = ()

    @property
    def api_versions(self) -> tuple[str, ...]:
        if not self.group:
            return self.versions
        return tuple(f"{self.group}/{version}" for version in self.versions)
