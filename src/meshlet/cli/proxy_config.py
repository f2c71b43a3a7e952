"""``meshlet proxy-config secret|listener|cluster|route|endpoint|all POD[.NAMESPACE]``.

istioctl's proxy-config: the sidecar's admin API (``/config_dump``, and
``/clusters?format=json`` for endpoints) is read through the cluster
(``ClusterClient.admin``) and printed by ``meshlet.istioctl.proxy_config``:
istioctl's tables by default (``-o short``), or the resources as JSON or YAML.
``POD`` may be ``deployment/NAME`` (its first pod) and the namespace given as
``POD.NAMESPACE`` or with ``-n``.

With ``--kubeconfig`` (and ``--context``) the sidecar is in a Kubernetes cluster: the
same admin paths are read through the API server's pod port-forward to 15000
(``meshlet.kube.portforward``), as istioctl reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from meshlet.cli import _cluster, _pods
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.istioctl import proxy_config as pc

__all__ = ["add_kube_flags", "pod_and_namespace", "register", "render", "run_kube"]

CONFIG_DUMP = "/config_dump"
CLUSTERS = "/clusters?format=json"

_SUBCOMMANDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("secret", ("secrets", "s"), "the secrets (certificates) the proxy holds"),
    ("listener", ("listeners", "l"), "the proxy's listeners and filter chains"),
    ("cluster", ("clusters", "c"), "the proxy's clusters"),
    ("route", ("routes", "r"), "the proxy's routes"),
    ("endpoint", ("endpoints", "ep"), "the proxy's endpoints and their health"),
    ("all", (), "everything above"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "proxy-config",
        aliases=["pc"],
        help="show a sidecar's configuration, as istioctl proxy-config",
        description=__doc__,
    )
    add_namespace_flag(parser)
    add_kube_flags(parser)
    kinds = parser.add_subparsers(dest="config_kind", metavar="TYPE", required=True)
    for name, aliases, help_text in _SUBCOMMANDS:
        sub = kinds.add_parser(name, aliases=list(aliases), help=help_text)
        sub.add_argument("pod", metavar="POD[.NAMESPACE]")
        sub.add_argument(
            "-o",
            "--output",
            default="short",
            choices=[f.value for f in pc.OutputFormat],
            help="short (a table), json or yaml",
        )
        add_namespace_flag(sub)
        add_kube_flags(sub)
        sub.set_defaults(run=run, config_kind=name)


def add_kube_flags(parser: argparse.ArgumentParser) -> None:
    """``--kubeconfig``/``--context``: a Kubernetes cluster instead of the local one."""
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="read the sidecar through this Kubernetes cluster's API server",
    )
    parser.add_argument(
        "--context", default=argparse.SUPPRESS, help="the kubeconfig context to use"
    )


def pod_and_namespace(text: str, default_namespace: str) -> tuple[str, str]:
    """``name.namespace`` (istioctl's form) or ``name`` in ``default_namespace``."""
    kind, slash, rest = text.rpartition("/")
    name, dot, namespace = rest.rpartition(".")
    if not dot or not name:
        return text, default_namespace
    return f"{kind}{slash}{name}", namespace


def _resources(dump: dict[str, Any], kind: str) -> list[Any]:
    type_name, key, message = {
        "listener": (pc.LISTENERS_DUMP, "listener", "envoy.config.listener.v3.Listener"),
        "cluster": (pc.CLUSTERS_DUMP, "cluster", "envoy.config.cluster.v3.Cluster"),
        "route": (pc.ROUTES_DUMP, "route_config", "envoy.config.route.v3.RouteConfiguration"),
    }[kind]
    return [pc.camel_case(item, message) for item in pc.resources_of(dump, type_name, key)]


def render(kind: str, output: pc.OutputFormat, fetch: Any, now: Any) -> str:
    """What proxy-config prints; ``fetch(path) -> bytes`` reads the admin API."""
    if kind == "endpoint":
        clusters = pc.parse_json(fetch(CLUSTERS), "clusters")
        if output is pc.OutputFormat.SHORT:
            return pc.render_endpoints(clusters)
        return pc.render_json(pc.camel_case(clusters, "envoy.admin.v3.Clusters"), output)
    dump = pc.parse_json(fetch(CONFIG_DUMP))
    if kind == "secret":
        if output is pc.OutputFormat.SHORT:
            return pc.render_secrets(dump, now)
        return pc.render_json(pc.secrets_dump_json(dump), output)
    if kind == "all":
        if output is not pc.OutputFormat.SHORT:
            redacted = pc.redact_private_keys(dump)
            return pc.render_json(pc.camel_case(redacted, "envoy.admin.v3.ConfigDump"), output)
        clusters = pc.parse_json(fetch(CLUSTERS), "clusters")
        return "\n".join(
            (
                pc.render_clusters(dump),
                pc.render_listeners(dump),
                pc.render_routes(dump),
                pc.render_secrets(dump, now),
                pc.render_endpoints(clusters),
            )
        )
    if output is not pc.OutputFormat.SHORT:
        return pc.render_json(_resources(dump, kind), output)
    if kind == "listener":
        return pc.render_listeners(dump)
    if kind == "cluster":
        return pc.render_clusters(dump)
    return pc.render_routes(dump)


def _paths(kind: str, output: pc.OutputFormat) -> tuple[str, ...]:
    """The admin paths ``render`` reads for ``kind`` (fetched ahead, over the cluster)."""
    if kind == "endpoint":
        return (CLUSTERS,)
    if kind == "all" and output is pc.OutputFormat.SHORT:
        return (CONFIG_DUMP, CLUSTERS)
    return (CONFIG_DUMP,)


def run_kube(args: argparse.Namespace) -> int:
    from meshlet.kube.client import connect
    from meshlet.kube.portforward import admin_get, resolve_pod

    target, namespace = pod_and_namespace(args.pod, namespace_of(args))
    output = pc.OutputFormat(args.output)

    async def fetch_all() -> dict[str, bytes]:
        async with await connect(args.kubeconfig, context=getattr(args, "context", None)) as api:
            pod = await resolve_pod(api, namespace, target)
            name = str(pod["metadata"]["name"])
            return {
                path: await admin_get(api, namespace, name, path)
                for path in _paths(args.config_kind, output)
            }

    bodies = asyncio.run(fetch_all())
    sys.stdout.write(render(args.config_kind, output, bodies.__getitem__, datetime.now(UTC)))
    return 0


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    if getattr(args, "kubeconfig", None):
        return run_kube(args)
    target, namespace = pod_and_namespace(args.pod, namespace_of(args))
    client = _cluster.open_client()
    pod = _pods.find_pod(client, namespace, target)
    name = str(pod["metadata"]["name"])
    text = render(
        args.config_kind,
        pc.OutputFormat(args.output),
        lambda path: client.admin(namespace, name, path),
        _cluster.now(),
    )
    sys.stdout.write(text)
    return 0
