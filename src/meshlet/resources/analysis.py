"""``meshlet analyze``: findings in ``istioctl analyze``'s form.

Each message is ``Level [CODE] (Kind namespace/name file:line) text``. Two sources of
findings are joined here:

- the schema-validation analyzer, as istioctl prints it: validation errors are
  ``IST0106`` ("Schema validation error: …") and validation warnings ``IST0133``
  ("Schema validation warning: …"), for the objects read from files (the running
  cluster's objects were validated when they were stored);
- the analyzers of ``meshlet.analyzers``, over every object of the analysis: the
  files' objects merged over the running cluster's (a file's object replaces the
  cluster's object of the same kind, namespace and name), as ``istioctl analyze -f``
  merges files with the cluster.

Messages are sorted as istioctl sorts them — by level (errors first), code, resource,
then the whole line — and exact duplicates are dropped.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshlet.analyzers import run_analyzers
from meshlet.analyzers.context import CLUSTER_FILE, build_context
from meshlet.analyzers.message import Message, sorted_messages
from meshlet.errors import Location, MeshletError
from meshlet.resources.kinds import lookup
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.objects import Resource
from meshlet.resources.validation import Finding, Level, validate
from meshlet.resources.yamlsource import Document

__all__ = [
    "SCHEMA_VALIDATION_ERROR",
    "SCHEMA_WARNING",
    "Message",
    "analyze",
    "cluster_resources",
    "load_error_messages",
    "sorted_messages",
]

SCHEMA_VALIDATION_ERROR = "IST0106"
SCHEMA_WARNING = "IST0133"


def finding_message(resource: Resource, finding: Finding) -> Message:
    """A validation finding as istioctl's schema analyzer reports it."""
    if finding.level is Level.ERROR:
        code, text = SCHEMA_VALIDATION_ERROR, f"Schema validation error: {finding.message}"
    else:
        code, text = SCHEMA_WARNING, f"Schema validation warning: {finding.message}"
    return Message(finding.level, code, resource.ref, resource.location_of(finding.path), text)


def load_error_messages(errors: Iterable[MeshletError]) -> list[Message]:
    """Input that could not be decoded (bad YAML, unknown field …), one message each."""
    return sorted_messages(
        Message(
            Level.ERROR,
            SCHEMA_VALIDATION_ERROR,
            error.resource,
            error.location,
            f"Schema validation error: {error.message}",
        )
        for error in errors
    )


def cluster_resources(objects: Iterable[Mapping[str, Any]]) -> list[Resource]:
    """The running cluster's stored objects as resources (kinds meshlet does not read are
    skipped). They carry no file: messages about them name the resource alone."""
    resources = []
    for body in objects:
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            continue
        info = lookup(api_version, kind)
        if info is None:
            continue
        metadata = body.get("metadata") or {}
        namespace = (metadata.get("namespace") or "default") if info.namespaced else None
        document = Document(body, Location(CLUSTER_FILE))
        resources.append(Resource(info, api_version, body, document, namespace))
    return resources


def _key(resource: Resource) -> tuple[str, str, str, str]:
    return (resource.info.group, resource.kind, resource.namespace or "", resource.name)


def analyze(
    resources: Iterable[Resource],
    mesh: MeshSettings,
    *,
    cluster: Iterable[Resource] | None = None,
) -> list[Message]:
    """Every finding about ``resources`` (from files), in istioctl's order.

    ``cluster`` is the running cluster's objects, or None when files are analyzed
    alone; the files' objects win over the cluster's.
    """
    files = list(resources)
    messages = [
        finding_message(resource, finding) for resource in files for finding in validate(resource)
    ]
    merged = {_key(resource): resource for resource in cluster or ()}
    merged.update((_key(resource), resource) for resource in files)
    context = build_context(merged.values(), mesh, live=cluster is not None)
    messages.extend(run_analyzers(context))
    return sorted_messages(messages)
