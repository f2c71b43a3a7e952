"""A decoded resource: its kind, its checked body, and where it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshlet.errors import Location, ObjectRef
from meshlet.resources.kinds import KindInfo
from meshlet.resources.yamlsource import Document, Path

__all__ = ["Resource"]


@dataclass(frozen=True, slots=True)
class Resource:
    """One object of a known kind whose body passed the kind's schema.

    ``body`` is the object as written (plain dicts and lists). ``namespace`` is the
    object's own ``metadata.namespace``, or the namespace it was placed in by the
    command that read it (``-n``); it is ``None`` for cluster-scoped kinds.
    """

    info: KindInfo
    api_version: str
    body: Mapping[str, Any]
    document: Document
    namespace: str | None = None
    body_path: Path = ()  # where the body sits in its document (items of a List)

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.body.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def labels(self) -> Mapping[str, str]:
        return self.metadata.get("labels") or {}

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.metadata.get("annotations") or {}

    @property
    def creation_timestamp(self) -> str | None:
        value = self.metadata.get("creationTimestamp")
        return str(value) if value is not None else None

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.body.get("spec") or {}

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.kind, self.name, self.namespace)

    @property
    def location(self) -> Location:
        return self.document.location_of(self.body_path)

    def location_of(self, path: Path) -> Location:
        """The file and line of a field of this object (``("spec", "ingress", 0)``)."""
        return self.document.location_of((*self.body_path, *path))

    def in_namespace(self, namespace: str) -> Resource:
        """This object placed in ``namespace`` unless it names its own (or is cluster-scoped)."""
        if not self.info.namespaced:
            return self
        own = self.metadata.get("namespace")
        return Resource(
            self.info, self.api_version, self.body, self.document, own or namespace, self.body_path
        )
