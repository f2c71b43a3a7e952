"""``meshlet describe TYPE NAME… | TYPE/NAME… | TYPE [-l SEL]``: kubectl's describe.

The objects are read from the cluster (with the pods a Service or Deployment
selects, for its endpoints and replica set) and printed by
``meshlet.cli.describers``; several objects are separated by a blank line, as
kubectl separates them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meshlet.cli import _cluster, _pods
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.cli.describers import describe
from meshlet.kubectl.messages import name_with_selector
from meshlet.kubectl.names import parse_resource_args

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("describe", help="show details of objects", description=__doc__)
    parser.add_argument("resources", nargs="+", metavar="TYPE [NAME…]")
    parser.add_argument("-l", "--selector", help="describe the objects with these labels")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    namespace = None if args.all_namespaces else namespace_of(args)
    client = _cluster.open_client()
    now = _cluster.now()
    texts: list[str] = []
    for arg in parse_resource_args(args.resources):
        if arg.names and args.selector:
            raise name_with_selector()
        key = _cluster.kind_key(arg.info)
        scope = namespace if arg.info.namespaced else None
        if arg.names:
            objects = [client.get(key, namespace=scope, names=[name])[0] for name in arg.names]
        else:
            objects = client.get(key, namespace=scope, selector=args.selector)
        for obj in objects:
            pods: list[dict[str, Any]] = []
            if (arg.info.group, arg.info.kind) in (("", "Service"), ("apps", "Deployment")):
                selector = _pods.selector_of(obj)
                where = (obj.get("metadata") or {}).get("namespace") or namespace
                if selector:
                    pods = client.get("/Pod", namespace=where, selector=selector)
            texts.append(describe(arg.info, obj, now=now, pods=pods))
    if not texts:
        where = f" in {namespace} namespace" if namespace else ""
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    sys.stdout.write("\n\n".join(texts))
    return 0
