"""Envoy's TCP proxy filter: a byte pipe between the downstream and a cluster's host.

Theory of operation: the cluster named by the ``TcpProxy`` config gives a host (the
original destination for ORIGINAL_DST clusters); the connection to it is opened as
any upstream connection (bind address, connect timeout, TLS origination). Then two
copies run, one per direction, each reading at most 32 KiB and waiting for the other
side to drain before reading more, so a slow reader slows the writer instead of filling
memory. An end of stream on one side half-closes the other; when both directions have
ended, both connections close. A reset or error on either side aborts both. A cluster
that does not exist or has no host (``BlackHoleCluster``), or a connect failure, closes
the downstream connection, as Envoy does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from meshlet.proxy.metrics import ConnectionMetrics
from meshlet.proxy.streams import ByteStream
from meshlet.proxy.upstream import UpstreamFailure, UpstreamManager

__all__ = ["PIPE_BUFFER", "pipe", "serve_tcp_proxy"]

log = logging.getLogger(__name__)

PIPE_BUFFER = 32 * 1024


async def _copy(source: ByteStream, sink: ByteStream, counted: list[int], index: int) -> None:
    while True:
        data = await source.read(PIPE_BUFFER)
        if not data:
            sink.write_eof()
            return
        counted[index] += len(data)
        sink.write(data)
        await sink.drain()


async def pipe(
    downstream: ByteStream, upstream: ByteStream, counted: list[int] | None = None
) -> None:
    """Copy both ways until both directions end; abort both on an error.

    ``counted``, when given, gets ``[bytes received from downstream, bytes sent to it]``.
    """
    failed = False
    counts = counted if counted is not None else [0, 0]
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_copy(downstream, upstream, counts, 0))
            tasks.create_task(_copy(upstream, downstream, counts, 1))
    except* OSError:
        failed = True
    if failed:
        downstream.abort()
        upstream.abort()
    else:
        downstream.close()
        upstream.close()


async def serve_tcp_proxy(
    downstream: ByteStream,
    *,
    config: tcp_proxy_pb2.TcpProxy,
    clusters: Mapping[str, cluster_pb2.Cluster],
    assignments: Mapping[str, endpoint_pb2.ClusterLoadAssignment],
    upstreams: UpstreamManager,
    original_destination: tuple[str, int] | None,
    metrics: ConnectionMetrics | None = None,
) -> None:
    """Run the filter for one downstream connection until it ends (counted in
    ``metrics``: Istio's ``istio_tcp_*``)."""
    if metrics is not None:
        metrics.tcp_opened()
    counted = [0, 0]
    flags = "-"
    try:
        cluster = clusters.get(config.cluster)
        if cluster is None:
            log.debug("tcp_proxy: unknown cluster %s", config.cluster)
            flags = "NC"
            downstream.close()
            return
        try:
            endpoint = upstreams.pick(cluster, assignments, original_destination)
            upstream = await upstreams.connect(cluster, endpoint)
        except UpstreamFailure as failure:
            log.debug("tcp_proxy %s: %s", config.stat_prefix, failure.reason)
            flags = "UH" if failure.no_host else "UF"
            downstream.close()
            return
        try:
            await pipe(downstream, upstream, counted)
        finally:
            with contextlib.suppress(Exception):
                upstream.close()
    finally:
        if metrics is not None:
            metrics.tcp_closed(sent=counted[1], received=counted[0], flags=flags)
