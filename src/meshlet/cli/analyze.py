"""``meshlet analyze -f PATH… [-n NS]``: Istio's checks on files, as istioctl analyze prints them.

The messages go to stdout, one a line. When there is an Error, istioctl's closing
lines go to stderr and the exit code is 1; warnings alone exit 0.
"""

from __future__ import annotations

import argparse
import sys

from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.errors import ErrorList, ExitCode, LoadError, SourceError
from meshlet.resources.analysis import Message, analyze, load_error_messages
from meshlet.resources.loader import load
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.validation import Level

__all__ = ["register", "run"]

ANALYSIS_DOCS = "https://istio.io/latest/docs/reference/config/analysis"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analyze Istio and Kubernetes configuration and print problems",
        description="Analyze configuration files and print Istio-style findings.",
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="PATH",
        help="a file, a directory (recursive) or - for stdin; repeatable",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a mesh setting, e.g. values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true",
    )
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    mesh = MeshSettings().with_set_flags(args.set)
    namespace = namespace_of(args)
    try:
        resources = [r.in_namespace(namespace) for r in load(args.filename, sys.stdin)]
    except SourceError:
        raise
    except (ErrorList, LoadError) as exc:
        errors = exc.errors if isinstance(exc, ErrorList) else [exc]
        return _report(load_error_messages(errors), namespace)
    return _report(analyze(resources, mesh), namespace)


def _report(messages: list[Message], namespace: str) -> int:
    if not messages:
        print(f"\u2714 No validation issues found when analyzing namespace: {namespace}.")
        return ExitCode.OK
    for message in messages:
        print(message)
    if any(m.level is Level.ERROR for m in messages):
        print(
            f"Error: Analyzers found issues when analyzing namespace: {namespace}.\n"
            f"See {ANALYSIS_DOCS} for more information about causes and resolutions.",
            file=sys.stderr,
        )
        return ExitCode.ERROR
    return ExitCode.OK
