"""Shared pieces of the xDS tests: a proxy client that records what it is given."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from google.protobuf.message import Message

from meshlet.pilot.snapshot import Snapshot
from meshlet.proxy.xds_client import Backoff, XdsClient
from meshlet.resources.istio import Sidecar

Resources = dict[str, Message]


@dataclass
class Recorder:
    """What ``on_update`` received, newest last."""

    updates: list[tuple[Resources, Resources, Resources, Resources]] = field(default_factory=list)

    def __call__(
        self, listeners: Resources, clusters: Resources, routes: Resources, endpoints: Resources
    ) -> None:
        self.updates.append((listeners, clusters, routes, endpoints))

    @property
    def last(self) -> tuple[Resources, Resources, Resources, Resources]:
        return self.updates[-1]


@contextlib.asynccontextmanager
async def running_client(
    target: str, node_id: str, recorder: Recorder, **kwargs: object
) -> AsyncIterator[XdsClient]:
    """An ``XdsClient`` running in a task for the block; stopped and awaited after it."""
    client = XdsClient(
        target,
        node_id,
        recorder,
        metadata={"ISTIO_VERSION": "1.0-test", "CLUSTER_ID": "Kubernetes"},
        backoff=Backoff(initial=0.05, maximum=0.2),
        **kwargs,  # type: ignore[arg-type]
    )
    task = asyncio.get_running_loop().create_task(client.run())
    try:
        yield client
    finally:
        await client.stop()
        async with asyncio.timeout(5):
            await task


def with_default_endpoint(snapshot: Snapshot, sidecar_name: str, endpoint: str) -> Snapshot:
    """The snapshot with every ingress listener of one Sidecar sent to ``endpoint``."""
    sidecars: list[Sidecar] = []
    for sidecar in snapshot.sidecars:
        if sidecar.name != sidecar_name:
            sidecars.append(sidecar)
            continue
        ingress = tuple(
            replace(item, default_endpoint=endpoint) if item is not None else None
            for item in sidecar.ingress
        )
        sidecars.append(replace(sidecar, ingress=ingress))
    return replace(snapshot, sidecars=tuple(sidecars))
