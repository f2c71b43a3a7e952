"""``meshlet sidecar -f FILE… [--concurrency N] [--admin-port 15000]``: a standalone sidecar.

Runs the agent and its proxy workers next to any process on this host, with no
cluster: the Sidecar (and optional PeerAuthentication) objects in the files are turned
into the proxy's config by the control plane's builders (``meshlet.proxy.standalone``),
each ingress port is bound on its ``bind`` address, and file certificates are served
(and reloaded when they change) by the agent. Bad input is one line naming the file and
line, exit status 1, before anything is started. Ctrl-C or SIGTERM drains and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.errors import ErrorList, ExitCode, MeshletError
from meshlet.proxy._logging import setup_logging
from meshlet.proxy._workers import WorkerStarter

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sidecar",
        help="run a standalone sidecar (TLS or mutual-TLS termination) in front of an app",
        description=(
            "Run a sidecar on this host from Sidecar (and PeerAuthentication) objects: each "
            "ingress port is served on its bind address and forwarded to its defaultEndpoint."
        ),
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="a file, a directory (recursive) or - for stdin; repeatable",
    )
    parser.add_argument("--concurrency", type=int, default=2, help="proxy workers (default 2)")
    parser.add_argument("--admin-port", type=int, default=15000, help="admin port on 127.0.0.1")
    parser.add_argument(
        "--status-port", type=int, default=15021, help="the /healthz/ready port on 0.0.0.0"
    )
    parser.add_argument(
        "--prometheus-port", type=int, default=15090, help="the Prometheus port on 0.0.0.0"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="how long open connections may finish after SIGTERM",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


def _one_line(error: MeshletError) -> str:
    first = error.errors[0] if isinstance(error, ErrorList) else error
    return str(first).splitlines()[0]


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return ExitCode.USAGE
    # This process becomes the sidecar's agent. What it imports before the zygote is
    # forked (below) is shared with the zygote and the workers; gRPC and the agent's parts
    # are imported after it, so they are this process's alone.
    from meshlet.proxy.standalone import build_standalone_config
    from meshlet.resources.loader import load

    namespace = namespace_of(args)
    try:
        resources = [r.in_namespace(namespace) for r in load(args.filename, sys.stdin)]
        config = build_standalone_config(resources)
    except MeshletError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return ExitCode.ERROR
    setup_logging(args.log_level)
    starter = WorkerStarter(adopt_workers=True)
    # Not a single thread (a caller embedding this): the first worker starts a zygote.
    with contextlib.suppress(RuntimeError, OSError):
        starter.fork_zygote()
    from meshlet.proxy.sidecar import SidecarOptions, run_sidecar_process

    options = SidecarOptions(
        node_id=config.node_id,
        concurrency=args.concurrency,
        standalone=config,
        admin=("127.0.0.1", args.admin_port),
        status=("0.0.0.0", args.status_port),
        prometheus=("0.0.0.0", args.prometheus_port),
        drain_seconds=args.drain_seconds,
        log_level=args.log_level,
    )
    try:
        run_sidecar_process(options, starter=starter)
    except MeshletError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return ExitCode.ERROR
    return ExitCode.OK
