"""``meshlet delete TYPE NAME… | TYPE/NAME… | -f FILE | TYPE -l SELECTOR``.

Each object deleted prints kubectl's line (``secret "x" deleted from test
namespace``, ``namespace "test" deleted``); deleting a Namespace deletes everything
in it (the cluster stops its pods). A missing object prints kubectl's
``Error from server (NotFound)`` line, the others are still deleted, and the exit
code says something was missing (``--ignore-not-found`` keeps quiet about them).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meshlet.cli import _cluster
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.cli.apply import load_objects
from meshlet.cluster.protocol import ApiError
from meshlet.errors import ExitCode
from meshlet.kubectl.messages import KubectlError, deleted, name_with_selector, no_name_specified
from meshlet.kubectl.names import parse_resource_args
from meshlet.resources.kinds import KindInfo

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("delete", help="delete objects", description=__doc__)
    parser.add_argument("resources", nargs="*", metavar="TYPE [NAME…]")
    parser.add_argument(
        "-f", "--filename", action="append", default=[], metavar="PATH", help="repeatable"
    )
    parser.add_argument("-l", "--selector", help="delete the objects with these labels")
    parser.add_argument(
        "--ignore-not-found", action="store_true", help="a missing object is not an error"
    )
    parser.add_argument(
        "--wait", default="true", help="accepted for kubectl's sake: deletion is immediate"
    )
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


def _targets(
    client: _cluster.ClusterApi, args: argparse.Namespace, namespace: str
) -> list[tuple[KindInfo, str, list[str]]]:
    """``(kind, namespace, names)`` to delete, in the order asked."""
    if args.filename:
        if args.resources:
            raise KubectlError(
                "when paths, URLs, or stdin is provided as input, you may not specify "
                "resource arguments as well"
            )
        resources = load_objects(args.filename, namespace, _cluster.explicit_namespace(args))
        return [(r.info, r.namespace or namespace, [r.name]) for r in resources]
    requested = parse_resource_args(args.resources)
    targets: list[tuple[KindInfo, str, list[str]]] = []
    for arg in requested:
        if arg.names and args.selector:
            raise name_with_selector()
        names = list(arg.names)
        if args.selector:
            found = client.get(
                _cluster.kind_key(arg.info),
                namespace=namespace if arg.info.namespaced else None,
                selector=args.selector,
            )
            names = sorted(str((o.get("metadata") or {}).get("name")) for o in found)
            if not names:
                continue
        elif not names:
            raise no_name_specified()
        targets.append((arg.info, namespace, names))
    return targets


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    client = _cluster.open_client()
    targets = _targets(client, args, namespace)
    if not targets and args.selector:
        print("No resources found", file=sys.stderr)
        return 0
    code = int(ExitCode.OK)
    for info, where, names in targets:
        scope = where if info.namespaced else None
        try:
            results: list[dict[str, Any]] = client.delete(
                _cluster.kind_key(info), namespace=scope, names=names
            )
        except ApiError as error:
            if error.reason == "NotFound" and args.ignore_not_found:
                continue
            if error.reason != "NotFound":
                raise
            print(error.message, file=sys.stderr)
            code = max(code, int(error.exit_code))
            continue
        for result in results:
            if result.get("status") == "NotFound":
                if not args.ignore_not_found:
                    print(str(result.get("message")), file=sys.stderr)
                    code = max(code, int(ExitCode.NOT_FOUND))
                continue
            print(deleted(info, str(result["name"]), result.get("namespace")))
            sys.stdout.flush()
    return code
