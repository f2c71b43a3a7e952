"""``meshlet x describe pod POD[.NAMESPACE] [-n NS]``: istioctl's experimental describe.

The pod, the Services that select it, the composed PeerAuthentication, and — for this
feature — the Sidecar that applies and, per inbound port, its mTLS mode and whether
the ingress ``tls`` block is used (``meshlet.istioctl.describe`` prints it all).

The objects come from the local cluster (``meshlet.cluster.client``), or with
``--kubeconfig`` (and ``--context``) from a Kubernetes API server. The mesh settings
(``ENABLE_TLS_ON_SIDECAR_INGRESS``, the root namespace) are those ``install --set``
saved: on one host the cluster's settings file, in a cluster the ``--set`` arguments
of the control plane's Deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from meshlet.cli import _cluster
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.cli.proxy_config import add_kube_flags, pod_and_namespace
from meshlet.cluster.home import ClusterHome
from meshlet.errors import UsageError
from meshlet.istioctl.describe import describe_pod, typed_policies
from meshlet.resources.kinds import KINDS
from meshlet.resources.mesh import MeshSettings

__all__ = ["POLICY_KINDS", "register", "run", "set_flags_of_deployment"]

POLICY_KINDS = ("networking.istio.io/Sidecar", "security.istio.io/PeerAuthentication")
_GATEWAY_SELECTOR = "istio=ingressgateway"
_CONTROL_PLANE = "istiod"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "x", aliases=["experimental"], help="experimental istioctl-like commands"
    )
    verbs = parser.add_subparsers(dest="x_verb", metavar="COMMAND", required=True)
    describe = verbs.add_parser(
        "describe", aliases=["des"], help="describe a resource and the mesh configuration on it"
    )
    kinds = describe.add_subparsers(dest="describe_kind", metavar="TYPE", required=True)
    pod = kinds.add_parser(
        "pod", aliases=["po"], help="a pod and its Istio configuration", description=__doc__
    )
    pod.add_argument("pod", metavar="POD[.NAMESPACE]")
    add_namespace_flag(pod)
    add_kube_flags(pod)
    pod.set_defaults(run=run)


def _with_kind(bodies: Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    info = next(i for i in KINDS if f"{i.group}/{i.kind}" == key)
    filled = []
    for body in bodies:
        item = dict(body)
        item.setdefault("apiVersion", info.api_versions[0])
        item.setdefault("kind", info.kind)
        filled.append(item)
    return filled


def _saved_flags(home: ClusterHome) -> list[str]:
    try:
        raw = json.loads(home.settings_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    flags = raw.get("set") if isinstance(raw, dict) else None
    return [str(flag) for flag in flags] if isinstance(flags, list) else []


def set_flags_of_deployment(deployment: Mapping[str, Any]) -> list[str]:
    """The ``--set`` flags the control plane's Deployment passes to its container."""
    flags: list[str] = []
    template = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in template.get("containers") or []:
        args = [str(a) for a in container.get("args") or []]
        for index, arg in enumerate(args):
            if arg == "--set" and index + 1 < len(args):
                flags.append(args[index + 1])
            elif arg.startswith("--set="):
                flags.append(arg[len("--set=") :])
    return flags


def _mesh(flags: Sequence[str]) -> MeshSettings:
    try:
        return MeshSettings().with_set_flags(flags)
    except UsageError:
        return MeshSettings()  # settings meshlet does not know do not stop a describe


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    shown = namespace_of(args)
    name, namespace = pod_and_namespace(args.pod, shown)
    if "/" in name:
        raise UsageError(f"x describe pod takes a pod name, not {name!r}")
    if getattr(args, "kubeconfig", None):
        text = _describe_kube(args, name, namespace, shown)
    else:
        text = _describe_local(name, namespace, shown)
    sys.stdout.write(text)
    return 0


def _describe_local(name: str, namespace: str, shown: str) -> str:
    client = _cluster.open_client()
    mesh = _mesh(_saved_flags(ClusterHome.from_environment(os.environ)))
    pod = client.get("/Pod", namespace=namespace, names=[name])[0]
    services = client.get("/Service", namespace=namespace)
    bodies: list[dict[str, Any]] = []
    for key in POLICY_KINDS:
        for ns in sorted({namespace, mesh.root_namespace}):
            bodies += _with_kind(client.get(key, namespace=ns), key)
    sidecars, policies = typed_policies(bodies)
    gateways = client.get("/Pod", namespace=None, selector=_GATEWAY_SELECTOR)
    return describe_pod(
        pod,
        services=services,
        sidecars=sidecars,
        peer_authentications=policies,
        mesh=mesh,
        namespace=shown,
        ingress_gateway_pods=len(gateways),
    )


def _describe_kube(args: argparse.Namespace, name: str, namespace: str, shown: str) -> str:
    from meshlet.kube.client import ApiStatusError, KubeApi, connect
    from meshlet.kube.settings import KubeSettings
    from meshlet.kube.watchstate import spec_for

    async def listed(api: KubeApi, key: str, ns: str | None, **query: str) -> list[dict[str, Any]]:
        spec = spec_for(key)
        body = await api.request("GET", spec.collection_path(ns), query=list(query.items()))
        items = []
        for item in body.get("items") or []:
            filled = dict(item)
            filled.setdefault("apiVersion", spec.api_version)
            filled.setdefault("kind", spec.kind)
            items.append(filled)
        return items

    async def gather() -> str:
        async with await connect(args.kubeconfig, context=getattr(args, "context", None)) as api:
            root = KubeSettings().namespace
            try:
                deployment = await api.request(
                    "GET", f"/apis/apps/v1/namespaces/{root}/deployments/{_CONTROL_PLANE}"
                )
                mesh = _mesh(set_flags_of_deployment(deployment))
            except ApiStatusError as error:
                if error.code not in (403, 404):
                    raise
                mesh = MeshSettings()
            pod = await api.request("GET", spec_for("/Pod").object_path(name, namespace), query=())
            pod.setdefault("apiVersion", "v1")
            pod.setdefault("kind", "Pod")
            services = await listed(api, "/Service", namespace)
            bodies: list[dict[str, Any]] = []
            for key in POLICY_KINDS:
                for ns in sorted({namespace, mesh.root_namespace}):
                    bodies += await listed(api, key, ns)
            gateways = await listed(api, "/Pod", None, labelSelector=_GATEWAY_SELECTOR)
            sidecars, policies = typed_policies(bodies)
            return describe_pod(
                pod,
                services=services,
                sidecars=sidecars,
                peer_authentications=policies,
                mesh=mesh,
                namespace=shown,
                ingress_gateway_pods=len(gateways),
            )

    return asyncio.run(gather())
