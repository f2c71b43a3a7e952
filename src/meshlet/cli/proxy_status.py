"""``meshlet proxy-status``: each connected proxy's xDS sync state, as istioctl prints it.

The command asks the control plane the way istioctl asks istiod: over the ADS port
(``--xds-address``, default ``127.0.0.1:15010``), with one ``DiscoveryRequest`` of type
``istio.io/debug/syncz``; the answer lists every connected proxy with the state of each
type (``meshlet.xds.status``). The table is istioctl's: columns
``NAME CLUSTER CDS LDS EDS RDS ECDS ISTIOD VERSION``, a state with its age
(``SYNCED (5s)``), ``IGNORED`` for a type the proxy does not subscribe to, Go's
tabwriter spacing (five spaces of padding). A proxy that NACKed shows ``ERROR``, and
the NACK messages follow the table, one block per proxy and type.

With ``--kubeconfig`` (and ``--context``) the control plane runs in a Kubernetes
cluster: the same request goes to a running ``app=istiod`` pod's 15010 in
``--istio-namespace`` through the API server's pod port-forward
(``meshlet.kube.portforward.forward_local_port``), as istioctl reaches istiod.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TextIO

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from meshlet.errors import ExitCode, MeshletError, UsageError
from meshlet.kubectl import age
from meshlet.xds.cache import parse_node_id, short_type
from meshlet.xds.status import (
    DISPLAY_TYPES,
    SYNCZ_TYPE,
    ProxyStatus,
    SyncState,
    status_from_response,
)

__all__ = [
    "DEFAULT_XDS_ADDRESS",
    "fetch_status_kube",
    "format_table",
    "human_duration",
    "register",
    "render",
    "run",
]

DEFAULT_XDS_ADDRESS = "127.0.0.1:15010"
HEADER = ("NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION")
_PADDING = 5
_DEBUG_NODE = "debug~0.0.0.0~meshlet~cluster.local"


class ControlPlaneUnavailable(MeshletError):
    """The control plane's xDS server cannot be reached."""

    exit_code = ExitCode.UNAVAILABLE


def human_duration(seconds: float) -> str:
    """A duration as kubectl and istioctl print ages (``45s``, ``3m20s``, ``5h``, ``2d3h``)."""
    return age.human_duration(timedelta(seconds=seconds))


def format_table(rows: Sequence[Sequence[str]], padding: int = _PADDING) -> str:
    """Rows as Go's ``tabwriter`` aligns tab-separated cells (minwidth 0, pad with spaces).

    Every cell but a line's last is a column cell, padded to its column's widest cell
    plus ``padding``; the last cell of a line is written as it is.
    """
    widths: list[int] = []
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            if index == len(widths):
                widths.append(0)
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i] + padding) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else ""))
    return "".join(line + "\n" for line in lines)


def _state_cell(status: ProxyStatus, type_url: str, now: float) -> str:
    if not any(item.type_url == type_url for item in status.types):
        return "IGNORED"
    item = status.of(type_url)
    label = str(item.state.value)
    if item.state is SyncState.NOT_SENT or item.last_updated is None:
        return label
    return f"{label} ({human_duration(now - item.last_updated)})"


def _name(node_id: str) -> str:
    ref = parse_node_id(node_id)
    return ref.name if ref is not None else node_id


def render(
    server_id: str, statuses: Sequence[ProxyStatus], now: float, name_filter: str = ""
) -> str:
    """The table and then each NACK message: what the command prints."""
    rows: list[tuple[str, ...]] = [HEADER]
    nacks: list[str] = []
    chosen = sorted(
        (s for s in statuses if not name_filter or name_filter in _name(s.node_id)),
        key=lambda s: _name(s.node_id),
    )
    for status in chosen:
        name = _name(status.node_id)
        cells = [_state_cell(status, t, now) for t in DISPLAY_TYPES]
        rows.append(
            (
                name,
                status.cluster_id,
                *cells,
                "IGNORED",
                server_id,
                status.istio_version,
            )
        )
        for item in status.types:
            if item.state is SyncState.ERROR and item.nack:
                detail = "\n".join(f"    {line}" for line in item.nack.splitlines())
                nacks.append(f"{name} {short_type(item.type_url)} NACK:\n{detail}\n")
    text = format_table(rows)
    if nacks:
        text += "\n" + "".join(nacks)
    return text


def fetch_status(address: str, timeout: float) -> tuple[str, list[ProxyStatus]]:
    """Ask the ADS server at ``address`` for its proxies' sync status."""
    request = discovery_pb2.DiscoveryRequest(
        type_url=SYNCZ_TYPE, node=base_pb2.Node(id=_DEBUG_NODE)
    )
    try:
        with grpc.insecure_channel(address) as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            responses = stub.StreamAggregatedResources(iter([request]), timeout=timeout)
            for response in responses:
                if response.type_url == SYNCZ_TYPE:
                    responses.cancel()
                    return status_from_response(response)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        if code is not grpc.StatusCode.CANCELLED:
            name = code.name if code is not None else "UNKNOWN"
            raise ControlPlaneUnavailable(
                f"cannot reach the control plane's xDS server at {address} ({name}); "
                "is the mesh installed and running?"
            ) from None
    raise ControlPlaneUnavailable(f"the xDS server at {address} sent no sync status")


def fetch_status_kube(
    kubeconfig: str, context: str | None, namespace: str, timeout: float
) -> tuple[str, list[ProxyStatus]]:
    """Ask a control plane pod in a Kubernetes cluster, through a port-forward to 15010."""
    from meshlet.kube.client import connect
    from meshlet.kube.portforward import control_plane_pod, forward_local_port
    from meshlet.kube.settings import XDS_PORT

    async def ask() -> tuple[str, list[ProxyStatus]]:
        async with await connect(kubeconfig, context=context) as api:
            pod = await control_plane_pod(api, namespace)
            name = str(pod["metadata"]["name"])
            async with forward_local_port(api, namespace, name, XDS_PORT) as port:
                return await asyncio.to_thread(fetch_status, f"127.0.0.1:{port}", timeout)

    return asyncio.run(ask())


def fetch_status_local() -> tuple[str, list[ProxyStatus]]:
    """Ask the local cluster's control plane, through its daemon (its xDS port listens in
    the cluster's own network namespace, which the host does not reach)."""
    from meshlet.cli._cluster import open_client

    answer = discovery_pb2.DiscoveryResponse.FromString(open_client().proxy_status())
    return status_from_response(answer)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    kubeconfig = getattr(args, "kubeconfig", None)
    if kubeconfig:
        server_id, statuses = fetch_status_kube(
            kubeconfig, getattr(args, "context", None), args.istio_namespace, args.timeout
        )
    elif args.xds_address is None:
        server_id, statuses = fetch_status_local()
    else:
        address = args.xds_address
        if ":" not in address:
            raise UsageError(f"--xds-address must be HOST:PORT, not {address!r}")
        server_id, statuses = fetch_status(address, args.timeout)
    name = args.name or ""
    if "/" in name:
        name = name.split("/", 1)[1]
    (out or sys.stdout).write(render(server_id, statuses, time.time(), name))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "proxy-status",
        aliases=["ps"],
        help="show each proxy's xDS sync state with the control plane",
        description=(
            "Show each connected proxy's CDS, LDS, EDS and RDS state (SYNCED, STALE, "
            "NOT SENT, or ERROR with the proxy's NACK message), as istioctl proxy-status."
        ),
    )
    parser.add_argument(
        "name", nargs="?", help="only proxies whose POD.NAMESPACE contains this text"
    )
    parser.add_argument(
        "--xds-address",
        default=None,
        help=(
            "the control plane's xDS address, e.g. "
            f"{DEFAULT_XDS_ADDRESS} (default: the local cluster's control plane)"
        ),
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the answer"
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="ask the control plane of this Kubernetes cluster (through a port-forward)",
    )
    parser.add_argument("--context", help="the kubeconfig context to use")
    parser.add_argument(
        "-i",
        "--istio-namespace",
        default="istio-system",
        help="the control plane's namespace in the cluster (default istio-system)",
    )
    parser.set_defaults(run=run)
