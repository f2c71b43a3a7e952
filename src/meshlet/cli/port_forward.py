"""``meshlet port-forward POD|TYPE/NAME [LOCAL:]REMOTE…``: a local port to a pod's port.

Theory of operation: as the kubelet does, each forwarded connection is opened *inside
the pod's network namespace* to ``localhost:REMOTE`` there (a socket made by a thread
that joined the namespace keeps it), so nothing on the host connects to a pod address.
The local side listens on the host's loopback only. For ``svc/NAME`` the remote port is
the Service port, mapped to its ``targetPort`` as kubectl maps it (a named target port is
looked up among the pod's container ports).

The pure part (``parse_port_pairs``, ``target_port``) is separate from the relay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshlet.cli import _cluster, _pods
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.kubectl.messages import KubectlError
from meshlet.runtime.netns import open_socket_in_netns

__all__ = ["PortPair", "parse_port_pairs", "register", "run", "target_port"]

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class PortPair:
    local: int  # 0: a free port chosen when listening
    remote: int


def parse_port_pairs(texts: Sequence[str]) -> list[PortPair]:
    """``8080:80``, ``80`` (the same port locally) or ``:80`` (any free local port)."""
    pairs = []
    for text in texts:
        local, sep, remote = text.partition(":")
        if not sep:
            local = remote = text
        try:
            pair = PortPair(int(local) if local else 0, int(remote))
        except ValueError:
            raise KubectlError(f"error: Error parsing remote port '{text}'") from None
        if not 0 <= pair.local <= 65535 or not 1 <= pair.remote <= 65535:
            raise KubectlError(f"error: Port '{text}' is not in the range 1..65535")
        pairs.append(pair)
    return pairs


def target_port(service: Mapping[str, Any], pod: Mapping[str, Any], port: int) -> int:
    """The pod port a Service port leads to, as ``kubectl port-forward svc/x`` picks it."""
    for entry in (service.get("spec") or {}).get("ports") or []:
        if entry.get("port") != port:
            continue
        target = entry.get("targetPort", port)
        if isinstance(target, int):
            return target
        for container in (pod.get("spec") or {}).get("containers") or []:
            for declared in container.get("ports") or []:
                if declared.get("name") == target:
                    return int(declared["containerPort"])
        raise KubectlError(
            f"error: Service {service['metadata']['name']} does not have a named port {target}"
        )
    raise KubectlError(
        f"error: Service {service['metadata']['name']} does not have a service port {port}"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "port-forward", help="forward local ports to a pod", description=__doc__
    )
    parser.add_argument("pod", metavar="POD|TYPE/NAME")
    parser.add_argument("ports", nargs="+", metavar="[LOCAL:]REMOTE")
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    client = _cluster.open_client()
    pairs = parse_port_pairs(args.ports)
    pod = _pods.find_pod(client, namespace, args.pod)
    kind, _, name = args.pod.partition("/")
    if name and kind in ("svc", "service", "services"):
        (service,) = client.get("/Service", namespace=namespace, names=[name])
        pairs = [PortPair(p.local, target_port(service, pod, p.remote)) for p in pairs]
    pod_name = str(pod["metadata"]["name"])
    located = client.locate(namespace, pod_name, None)
    netns = f"/proc/{int(located['pid'])}/ns/net"
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_forward(netns, pairs))
    return 0


async def _forward(netns: str, pairs: Sequence[PortPair]) -> None:
    servers = []
    for pair in pairs:

        def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: PortPair = pair
        ) -> Awaitable[None]:
            return _relay(netns, pair, reader, writer)

        try:
            first = await asyncio.start_server(handler, "127.0.0.1", pair.local)
        except OSError as error:
            raise KubectlError(
                f"error: unable to listen on port {pair.local}: {error.strerror}"
            ) from None
        port = first.sockets[0].getsockname()[1]
        servers.append(first)
        print(f"Forwarding from 127.0.0.1:{port} -> {pair.remote}", flush=True)
        try:  # the IPv6 loopback as well, when the host has one
            servers.append(await asyncio.start_server(handler, "::1", port))
            print(f"Forwarding from [::1]:{port} -> {pair.remote}", flush=True)
        except OSError:
            pass
    await asyncio.gather(*(server.serve_forever() for server in servers))


async def _relay(
    netns: str, pair: PortPair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    local = writer.get_extra_info("sockname")[1]
    print(f"Handling connection for {local}", flush=True)
    loop = asyncio.get_running_loop()
    try:
        sock = await loop.run_in_executor(None, open_socket_in_netns, netns)
        await loop.sock_connect(sock, ("127.0.0.1", pair.remote))
        upstream_reader, upstream_writer = await asyncio.open_connection(sock=sock)
    except OSError as error:
        print(
            f"error: an error occurred forwarding {local} -> {pair.remote}: "
            f"failed to connect to localhost:{pair.remote} inside the pod: {error.strerror}",
            file=sys.stderr,
            flush=True,
        )
        writer.close()
        return
    try:
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
    finally:
        upstream_writer.close()
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
