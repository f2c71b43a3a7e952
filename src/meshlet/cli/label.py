"""``meshlet label TYPE NAME… KEY=VALUE… KEY- [--overwrite]``: kubectl's label.

Arguments with ``=`` set a label, arguments ending in ``-`` remove one, the others
name the objects (``namespace test`` or ``namespace/test``). Changing a label that
has another value needs ``--overwrite``. Each object prints ``namespace/test
labeled`` (``not labeled`` when nothing changed).
"""

from __future__ import annotations

import argparse

from meshlet.cli import _cluster
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.kubectl.messages import KubectlError, labeled
from meshlet.kubectl.names import parse_resource_args

__all__ = ["parse_label_args", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("label", help="set or remove labels", description=__doc__)
    parser.add_argument("args", nargs="+", metavar="TYPE NAME… KEY=VALUE… KEY-")
    parser.add_argument("--overwrite", action="store_true", help="replace existing values")
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


def parse_label_args(args: list[str]) -> tuple[list[str], dict[str, str | None]]:
    """``(resource arguments, {key: value or None to remove})``, as kubectl splits them."""
    resources: list[str] = []
    labels: dict[str, str | None] = {}
    seen_label = False
    for arg in args:
        if "=" in arg:
            key, _, value = arg.partition("=")
            if not key:
                raise KubectlError(f"invalid label spec: {arg}")
            labels[key] = value
            seen_label = True
        elif arg.endswith("-") and (seen_label or len(resources) >= 2 or "/" in "".join(resources)):
            key = arg[:-1]
            if not key:
                raise KubectlError(f"invalid label spec: {arg}")
            if key in labels and labels[key] is not None:
                raise KubectlError("can not both modify and remove a label in the same command")
            labels[key] = None
            seen_label = True
        else:
            if seen_label:
                raise KubectlError(f"invalid label spec: {arg}")
            resources.append(arg)
    if not labels:
        raise KubectlError("at least one label update is required")
    return resources, labels


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    resource_args, labels = parse_label_args(args.args)
    requested = parse_resource_args(resource_args)
    namespace = namespace_of(args)
    client = _cluster.open_client()
    for arg in requested:
        if not arg.names:
            raise KubectlError("resource(s) were provided, but no name was specified")
        for name in arg.names:
            result = client.label(
                _cluster.kind_key(arg.info),
                namespace=namespace if arg.info.namespaced else None,
                name=name,
                labels=labels,
                overwrite=args.overwrite,
            )
            print(labeled(arg.info, name, changed=result.get("action") != "not labeled"))
    return 0
