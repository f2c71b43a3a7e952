"""``meshlet analyze [-f PATH…] [-n NS | -A] [--set NAME=VALUE]``: Istio's checks, and
meshlet's, as ``istioctl analyze`` prints them.

With ``-f`` it reads the files; when the local cluster runs, the files are merged
over the cluster's objects (the files winning), as istioctl merges them. With no
``-f`` it analyzes the running cluster. ``--use-kube=false`` analyzes the files alone.
The mesh settings are the cluster's (those ``install --set`` saved), or Istio's
defaults for files alone; ``--set`` changes them for this analysis.

Only messages about the namespace analyzed (``-n``, default ``default``) are shown,
and those about objects read from files; ``-A`` shows every namespace. The messages
go to stdout, one a line. When there is an Error, istioctl's closing lines go to
stderr and the exit code is 1; warnings and infos alone exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from meshlet.cli._cluster import ClusterApi, kind_key, open_client, server_errors
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.cluster.home import ClusterHome
from meshlet.cluster.protocol import ApiError
from meshlet.errors import ErrorList, ExitCode, LoadError, SourceError, UsageError
from meshlet.resources.analysis import (
    Message,
    analyze,
    cluster_resources,
    load_error_messages,
)
from meshlet.resources.kinds import KINDS
from meshlet.resources.loader import load
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.objects import Resource
from meshlet.resources.validation import Level

__all__ = ["register", "run"]

ANALYSIS_DOCS = "https://istio.io/latest/docs/reference/config/analysis"


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise argparse.ArgumentTypeError(f'expected true or false, not "{value}"')


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analyze Istio and Kubernetes configuration and print problems",
        description=(
            "Analyze configuration files, the running cluster, or both, and print "
            "Istio-style findings (codes in docs/analyzers.md)."
        ),
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="PATH",
        help="a file, a directory (recursive) or - for stdin; repeatable "
        "(none: analyze the running cluster)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a mesh setting, e.g. values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true",
    )
    parser.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="show the findings of every namespace",
    )
    parser.add_argument(
        "--use-kube",
        type=_boolean,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="merge the running cluster's objects when it runs (default true); "
        "--use-kube=false analyzes the files alone",
    )
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


@server_errors
def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    target = "all namespaces" if args.all_namespaces else f"namespace: {namespace}"
    if not args.filename and not args.use_kube:
        raise UsageError("nothing to analyze: give -f PATH, or leave --use-kube on")
    files: list[Resource] = []
    if args.filename:
        try:
            files = [r.in_namespace(namespace) for r in load(args.filename, sys.stdin)]
        except SourceError:
            raise
        except (ErrorList, LoadError) as exc:
            errors = exc.errors if isinstance(exc, ErrorList) else [exc]
            return _report(load_error_messages(errors), target)
    cluster = _read_cluster(open_client(), required=not args.filename) if args.use_kube else None
    mesh = MeshSettings()
    if cluster is not None:
        mesh = mesh.with_set_flags(_saved_set_flags(ClusterHome.from_environment(os.environ)))
    mesh = mesh.with_set_flags(args.set)
    messages = analyze(files, mesh, cluster=cluster)
    shown = [m for m in messages if _shown(m, namespace, args.all_namespaces)]
    return _report(shown, target)


def _read_cluster(client: ClusterApi, *, required: bool) -> list[Resource] | None:
    """The running cluster's objects; None when it does not run (an error if ``required``)."""
    objects: list[Mapping[str, Any]] = []
    for info in KINDS:
        try:
            bodies = client.get(kind_key(info), namespace=None)
        except ApiError as error:
            if error.reason == "Unavailable":
                if required:
                    raise
                return None
            raise
        for body in bodies:
            filled = dict(body)
            filled.setdefault("apiVersion", info.api_versions[0])
            filled.setdefault("kind", info.kind)
            objects.append(filled)
    return cluster_resources(objects)


def _saved_set_flags(home: ClusterHome) -> list[str]:
    """The ``--set`` flags ``install`` saved for the cluster (none if unreadable)."""
    try:
        raw = json.loads(home.settings_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    flags = raw.get("set") if isinstance(raw, dict) else None
    return [str(flag) for flag in flags] if isinstance(flags, list) else []


def _shown(message: Message, namespace: str, all_namespaces: bool) -> bool:
    """Whether a message is about the namespace analyzed (or came from a file)."""
    if all_namespaces or message.location is not None or message.resource is None:
        return True
    resource = message.resource
    if resource.namespace is None:
        return resource.kind == "Namespace" and resource.name == namespace
    return resource.namespace == namespace


def _report(messages: list[Message], target: str) -> int:
    if not messages:
        print(f"\u2714 No validation issues found when analyzing {target}.")
        return ExitCode.OK
    for message in messages:
        print(message)
    if any(m.level is Level.ERROR for m in messages):
        print(
            f"Error: Analyzers found issues when analyzing {target}.\n"
            f"See {ANALYSIS_DOCS} for more information about causes and resolutions.",
            file=sys.stderr,
        )
        return ExitCode.ERROR
    return ExitCode.OK
