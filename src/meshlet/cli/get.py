"""``meshlet get TYPE[,TYPE…] [NAME…] | TYPE/NAME…``: kubectl's get.

Flags as kubectl's: ``-n``, ``-A/--all-namespaces``, ``-l/--selector``,
``-o wide|yaml|json|name|jsonpath=TEMPLATE`` (also ``-o jsonpath TEMPLATE`` is not
kubectl's and is refused as kubectl refuses it). Objects named one by one print in
the order named; a missing one prints kubectl's ``Error from server (NotFound)`` line
after the others and the exit code says so. Several types print one table each,
names prefixed with their type, separated by a blank line; for ``yaml``, ``json``
and ``jsonpath`` everything goes into one ``List``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from meshlet.cli import _cluster
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.cluster.protocol import ApiError
from meshlet.errors import ExitCode
from meshlet.kubectl.encode import to_json, to_yaml
from meshlet.kubectl.jsonpath import render_jsonpath
from meshlet.kubectl.messages import name_with_selector, no_resources_found
from meshlet.kubectl.names import ResourceArg, parse_resource_args
from meshlet.kubectl.printers import (
    OutputFormat,
    OutputKind,
    list_object,
    parse_output_format,
    render_names,
    render_table,
)
from meshlet.resources.kinds import KindInfo

__all__ = ["Fetched", "fetch", "register", "render", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("get", help="list objects as kubectl does", description=__doc__)
    parser.add_argument("resources", nargs="+", metavar="TYPE [NAME…]")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    parser.add_argument("-l", "--selector", help="a label selector (app=sleep,version!=v2)")
    parser.add_argument("-o", "--output", help="wide|yaml|json|name|jsonpath=TEMPLATE")
    parser.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


Obj = dict[str, Any]


class Fetched:
    """What was found per requested type, and the lines of what was not."""

    def __init__(self) -> None:
        self.groups: list[tuple[KindInfo, list[Obj]]] = []
        self.errors: list[ApiError] = []


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def fetch(
    client: _cluster.ClusterApi,
    requested: list[ResourceArg],
    *,
    namespace: str | None,
    selector: str | None,
) -> Fetched:
    """The objects asked for (``namespace`` None: every namespace)."""
    fetched = Fetched()
    for arg in requested:
        key = _cluster.kind_key(arg.info)
        scope = namespace if arg.info.namespaced else None
        if arg.names:
            found: list[Obj] = []
            for name in arg.names:
                try:
                    found.extend(client.get(key, namespace=scope, names=[name]))
                except ApiError as error:
                    if error.reason != "NotFound":
                        raise
                    fetched.errors.append(error)
            fetched.groups.append((arg.info, found))
        else:
            listed = client.get(key, namespace=scope, selector=selector)
            fetched.groups.append((arg.info, sorted(listed, key=_sort_key)))
    return fetched


def _with_labels(table: str, objects: list[Obj]) -> str:
    lines = table.splitlines()
    labels = ["LABELS"]
    for obj in objects:
        have = (obj.get("metadata") or {}).get("labels") or {}
        labels.append(",".join(f"{k}={have[k]}" for k in sorted(have)) or "<none>")
    width = max(len(line) for line in lines)
    return "".join(
        f"{line.ljust(width)}   {label}\n" for line, label in zip(lines, labels, strict=True)
    )


def render(
    fetched: Fetched,
    output: OutputFormat,
    *,
    now: datetime,
    namespace: str | None,
    single_item: bool,
    show_labels: bool = False,
) -> tuple[str, str]:
    """``(stdout, stderr)`` of get for what was fetched."""
    groups = fetched.groups
    objects = [obj for _, found in groups for obj in found]
    stderr = "".join(error.message + "\n" for error in fetched.errors)
    if output.human_readable:
        several = len(groups) > 1
        tables = []
        for info, found in groups:
            if not found:
                continue
            table = render_table(
                info,
                found,
                now=now,
                wide=output.kind is OutputKind.WIDE,
                all_namespaces=namespace is None,
                with_kind=several,
            )
            tables.append(_with_labels(table, found) if show_labels else table)
        if not tables and not fetched.errors:
            namespaced = any(info.namespaced for info, _ in groups)
            where = namespace if namespaced else None
            return "", no_resources_found(where) + "\n"
        return "\n".join(tables), stderr
    if output.kind is OutputKind.NAME:
        return "".join(render_names(info, found) for info, found in groups), stderr
    if not objects and fetched.errors:
        return "", stderr
    data: Any = objects[0] if single_item and len(objects) == 1 else list_object(objects)
    if output.kind is OutputKind.YAML:
        return to_yaml(data), stderr
    if output.kind is OutputKind.JSON:
        return to_json(data), stderr
    return render_jsonpath(output.template, data), stderr


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    output = parse_output_format(args.output)
    requested = parse_resource_args(args.resources)
    named = sum(len(arg.names) for arg in requested)
    if args.selector and named:
        raise name_with_selector()
    namespace = None if args.all_namespaces else namespace_of(args)
    fetched = fetch(_cluster.open_client(), requested, namespace=namespace, selector=args.selector)
    stdout, stderr = render(
        fetched,
        output,
        now=_cluster.now(),
        namespace=namespace,
        single_item=named == 1 and len(requested) == 1,
        show_labels=args.show_labels,
    )
    sys.stdout.write(stdout)
    sys.stdout.flush()
    sys.stderr.write(stderr)
    if fetched.errors:
        return int(max(error.exit_code for error in fetched.errors))
    return int(ExitCode.OK)
