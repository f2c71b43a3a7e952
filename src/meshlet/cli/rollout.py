"""``meshlet rollout restart deployment/NAME…``: new pods for a Deployment.

As kubectl does, the pod template gets the annotation
``kubectl.kubernetes.io/restartedAt`` with the current time; the changed template
makes the cluster roll the Deployment (a new pod ready before an old one goes).
Prints ``deployment.apps/NAME restarted``.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

from meshlet.cli import _cluster
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.kubectl.messages import KubectlError, restarted
from meshlet.kubectl.names import parse_resource_args

__all__ = ["RESTARTED_AT", "register", "restart_body"]

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("rollout", help="manage the rollout of a Deployment")
    actions = parser.add_subparsers(dest="rollout_action", metavar="ACTION", required=True)
    restart = actions.add_parser("restart", help="restart a Deployment's pods", description=__doc__)
    restart.add_argument("resources", nargs="+", metavar="deployment/NAME")
    add_namespace_flag(restart)
    restart.set_defaults(run=run_restart)


def restart_body(deployment: dict[str, Any], stamp: str) -> dict[str, Any]:
    """The Deployment with its template annotated as restarted at ``stamp``."""
    body = copy.deepcopy(deployment)
    body.pop("status", None)
    metadata = body.setdefault("metadata", {})
    for server_field in ("uid", "resourceVersion", "creationTimestamp", "generation"):
        metadata.pop(server_field, None)
    template = body.setdefault("spec", {}).setdefault("template", {})
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[RESTARTED_AT] = stamp
    return body


@_cluster.server_errors
def run_restart(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    client = _cluster.open_client()
    for arg in parse_resource_args(args.resources):
        if (arg.info.group, arg.info.kind) != ("apps", "Deployment"):
            raise KubectlError(f"restarting is not supported for {arg.info.plural}")
        if not arg.names:
            raise KubectlError("resource(s) were provided, but no name was specified")
        for name in arg.names:
            found = client.get(_cluster.kind_key(arg.info), namespace=namespace, names=[name])
            stamp = _cluster.now().strftime("%Y-%m-%dT%H:%M:%SZ")
            client.apply([restart_body(found[0], stamp)], namespace=namespace)
            print(restarted(arg.info, name))
    return 0
