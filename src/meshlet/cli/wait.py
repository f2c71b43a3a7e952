"""``meshlet wait --for=condition=Ready TYPE/NAME… | TYPE -l SEL [--timeout=30s]``.

The objects are read again and again until each has the condition (``status`` of
the condition named, ``True`` unless ``--for=condition=NAME=VALUE`` says otherwise;
``--for=delete`` waits until they are gone). Each one prints kubectl's
``pod/x condition met`` (``pod/x deleted``) when it gets there; at the timeout,
kubectl's ``error: timed out waiting for the condition on pods/x`` and exit 1.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshlet.cli import _cluster
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.cluster.protocol import ApiError
from meshlet.kubectl.messages import KubectlError, condition_met, name_prefix
from meshlet.kubectl.names import parse_resource_args
from meshlet.resources.kinds import KindInfo

__all__ = ["Condition", "has_condition", "parse_duration", "parse_for", "register", "run"]

POLL_SECONDS = 0.25

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("wait", help="wait for a condition", description=__doc__)
    parser.add_argument("resources", nargs="*", metavar="TYPE/NAME…")
    parser.add_argument(
        "--for", dest="wait_for", required=True, help="condition=NAME[=VALUE] or delete"
    )
    parser.add_argument("-l", "--selector", help="wait for the objects with these labels")
    parser.add_argument("--all", action="store_true", help="every object of the type")
    parser.add_argument("--timeout", default="30s", help="how long to wait (Go duration: 60s)")
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


def parse_duration(text: str) -> float:
    """A Go duration (``60s``, ``1m30s``, ``500ms``, ``0``) in seconds."""
    if text in ("0", "-0"):
        return 0.0
    negative = text.startswith("-")
    body = text.lstrip("+-")
    position = 0
    total = 0.0
    for match in _DURATION.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise KubectlError(
            f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"'
        )
    return -total if negative else total


@dataclass(frozen=True, slots=True)
class Condition:
    """What ``--for`` asks: a condition with a value, or deletion."""

    name: str = ""
    value: str = "True"
    delete: bool = False

    @property
    def verb(self) -> str:
        return "deleted" if self.delete else "condition met"


def parse_for(text: str) -> Condition:
    if text == "delete":
        return Condition(delete=True)
    kind, _, rest = text.partition("=")
    if kind != "condition" or not rest:
        raise KubectlError(f"unrecognized condition: {text!r}")
    name, has_value, value = rest.partition("=")
    return Condition(name=name, value=value if has_value else "True")


def has_condition(obj: Mapping[str, Any], condition: Condition) -> bool:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if str(item.get("type", "")).lower() == condition.name.lower():
            return str(item.get("status", "")).lower() == condition.value.lower()
    return False


def _targets(
    client: _cluster.ClusterApi, args: argparse.Namespace, namespace: str
) -> list[tuple[KindInfo, str]]:
    if not args.resources:
        raise KubectlError("You must provide one or more resources by argument or filename.")
    targets: list[tuple[KindInfo, str]] = []
    for arg in parse_resource_args(args.resources):
        if arg.names:
            targets.extend((arg.info, name) for name in arg.names)
            continue
        if not args.selector and not args.all:
            raise KubectlError("resource(s) were provided, but no name was specified")
        found = client.get(
            _cluster.kind_key(arg.info),
            namespace=namespace if arg.info.namespaced else None,
            selector=args.selector,
        )
        targets.extend((arg.info, str((o.get("metadata") or {}).get("name"))) for o in found)
    if not targets:
        raise KubectlError("no matching resources found")
    return targets


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    condition = parse_for(args.wait_for)
    timeout = parse_duration(args.timeout)
    namespace = namespace_of(args)
    client = _cluster.open_client()
    targets = _targets(client, args, namespace)
    deadline = time.monotonic() + timeout
    for info, name in targets:
        scope = namespace if info.namespaced else None
        while True:
            try:
                found = client.get(_cluster.kind_key(info), namespace=scope, names=[name])
            except ApiError as error:
                if error.reason != "NotFound":
                    raise
                if condition.delete:
                    print(f"{name_prefix(info)}/{name} deleted")
                    break
                raise
            if not condition.delete and found and has_condition(found[0], condition):
                print(condition_met(info, name))
                break
            if time.monotonic() >= deadline:
                raise KubectlError(f"timed out waiting for the condition on {info.plural}/{name}")
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    return 0
