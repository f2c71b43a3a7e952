"""Building an analysis from YAML text, for the analyzer tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from meshlet.analyzers.context import Context, build_context
from meshlet.analyzers.message import Message
from meshlet.resources.analysis import analyze, cluster_resources
from meshlet.resources.loader import decode_text
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.objects import Resource

FILE = "app.yaml"


def resources(text: str, *, namespace: str = "test", filename: str = FILE) -> list[Resource]:
    return [r.in_namespace(namespace) for r in decode_text(text, filename)]


def cluster(text: str) -> list[Resource]:
    """Objects as the running cluster stores them (no file, namespace set)."""
    bodies: list[dict[str, Any]] = [b for b in yaml.safe_load_all(text) if b]
    for body in bodies:
        if body["kind"] != "Namespace":
            body["metadata"].setdefault("namespace", "test")
    return cluster_resources(bodies)


def mesh(*, flag: bool = True) -> MeshSettings:
    return MeshSettings(enable_tls_on_sidecar_ingress=flag)


def run(
    text: str,
    *,
    flag: bool = True,
    live: str | None = None,
    namespace: str = "test",
) -> list[Message]:
    """Every message of analyzing ``text`` (and a running cluster's ``live`` objects)."""
    return analyze(
        resources(text, namespace=namespace),
        mesh(flag=flag),
        cluster=None if live is None else cluster(live),
    )


def of(messages: Sequence[Message], code: str) -> list[Message]:
    return [m for m in messages if m.code == code]


def context(text: str, *, flag: bool = True) -> Context:
    return build_context(resources(text), mesh(flag=flag))
