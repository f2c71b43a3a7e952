"""``meshlet apply -f FILE|DIR|- [--dry-run=client|server]``: kubectl's apply.

Everything named is read and checked first (``meshlet.resources.loader``: YAML,
kinds, fields; then Istio's and Kubernetes' validation): one problem anywhere
refuses the whole input, each problem on its own line with its file and line, and
nothing is sent. The objects then go to the cluster in one request (one
transaction) and each result prints as kubectl prints it:
``deployment.apps/httpbin created``, ``service/httpbin unchanged``; the cluster's
warnings go to stderr as ``Warning: …``.

A relative ``samples/…`` path that does not exist here is read from the samples
that ship with meshlet.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meshlet.cli import _cluster
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.errors import ConfigError, ErrorList, MeshletError
from meshlet.kubectl.messages import KubectlError, applied, name_prefix
from meshlet.resources.loader import load
from meshlet.resources.objects import Resource
from meshlet.resources.validation import Level, validate

__all__ = ["load_objects", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "apply", help="create or update objects from files", description=__doc__
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="PATH",
        help="a file, a directory (recursive) or - for stdin; repeatable",
    )
    parser.add_argument("-o", "--output", choices=("name",), help="print kind/name only")
    _cluster.add_dry_run_flag(parser)
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


def load_objects(paths: list[str], namespace: str, explicit: str | None) -> list[Resource]:
    """The resources of ``paths`` placed in ``namespace``, checked; or an ``ErrorList``
    naming every problem with its file and line."""
    resources = load([_cluster.resolve_sample(p) for p in paths], sys.stdin)
    placed: list[Resource] = []
    for resource in resources:
        own = resource.metadata.get("namespace")
        if explicit and resource.info.namespaced and own and own != explicit:
            raise KubectlError(
                f'the namespace from the provided object "{own}" does not match the namespace '
                f"\"{explicit}\". You must pass '--namespace={own}' to perform this operation."
            )
        placed.append(resource.in_namespace(namespace))
    errors: list[MeshletError] = []
    for resource in placed:
        for finding in validate(resource):
            if finding.level is Level.ERROR:
                errors.append(
                    ConfigError(
                        finding.message,
                        location=resource.location_of(finding.path),
                        resource=resource.ref,
                    )
                )
    if errors:
        raise ErrorList(errors)
    return placed


def sources_of(resources: list[Resource]) -> list[dict[str, Any]]:
    sources = []
    for resource in resources:
        where = resource.location
        source: dict[str, Any] = {"file": "STDIN" if where.file == "-" else where.file}
        if where.line is not None:
            source["line"] = where.line
        sources.append(source)
    return sources


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    resources = load_objects(args.filename, namespace, _cluster.explicit_namespace(args))
    client = _cluster.open_client()
    results = client.apply(
        [dict(r.body) for r in resources],
        namespace=namespace,
        dry_run=args.dry_run != "none",
        sources=sources_of(resources),
    )
    suffix = _cluster.dry_run_suffix(args.dry_run)
    for result in results:
        for warning in result.get("warnings") or []:
            print(f"Warning: {warning}", file=sys.stderr)
        info = _cluster.info_for(result.get("group"), str(result["kind"]))
        name = str(result["name"])
        if args.output == "name":
            print(f"{name_prefix(info)}/{name}")
        else:
            print(applied(info, name, str(result["action"])) + suffix)
    return 0
