"""``python -m meshlet.agent``: run one pod's agent until SIGTERM or SIGINT.

Settings come from the command line, or from the environment variables Istio's
pilot-agent reads (``POD_NAME``, ``POD_NAMESPACE``, ``SERVICE_ACCOUNT``, ``CA_ADDR``,
``TRUST_DOMAIN``, ``ECC_SIGNATURE_ALGORITHM``). Exit status 0 after a clean stop, 1 when
the agent cannot start (the reason on one line of stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta

import uvloop

from meshlet.agent.agent import Agent, AgentConfig
from meshlet.agent.keys import KeyAlgorithm, KeyOptions
from meshlet.errors import MeshletError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m meshlet.agent",
        description="Serve a pod's workload certificate and file secrets over SDS.",
    )
    parser.add_argument("--pod-name", default=env("POD_NAME"))
    parser.add_argument("--namespace", default=env("POD_NAMESPACE"))
    parser.add_argument("--service-account", default=env("SERVICE_ACCOUNT"))
    parser.add_argument("--trust-domain", default=env("TRUST_DOMAIN", "cluster.local"))
    parser.add_argument("--ca-address", default=env("CA_ADDR"), help="host:port of the CA")
    parser.add_argument("--root-cert", required=True, help="the mesh root certificate (PEM)")
    parser.add_argument("--token", help="the pod's token file")
    parser.add_argument(
        "--root-dir", default="/", help="the pod's root; the SDS socket is under it"
    )
    parser.add_argument("--cert-ttl", type=float, default=24 * 3600.0, help="seconds")
    parser.add_argument(
        "--ecdsa",
        action="store_true",
        default=env("ECC_SIGNATURE_ALGORITHM", "").upper() == "ECDSA",
        help="an ECDSA P-256 workload key instead of RSA 2048",
    )
    parser.add_argument("--log-level", default="info")
    return parser


async def _serve(config: AgentConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with Agent(config):
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    missing = [
        flag
        for flag, value in (
            ("--pod-name", args.pod_name),
            ("--namespace", args.namespace),
            ("--service-account", args.service_account),
        )
        if not value
    ]
    if missing:
        print(f"meshlet agent: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s\t%(levelname)s\t%(name)s\t%(message)s",
    )
    config = AgentConfig(
        pod_name=args.pod_name,
        namespace=args.namespace,
        service_account=args.service_account,
        trust_domain=args.trust_domain,
        ca_address=args.ca_address,
        root_cert_path=args.root_cert,
        token_path=args.token,
        root_dir=args.root_dir,
        cert_ttl=timedelta(seconds=args.cert_ttl),
        key_options=KeyOptions(algorithm=KeyAlgorithm.ECDSA if args.ecdsa else KeyAlgorithm.RSA),
    )
    try:
        uvloop.run(_serve(config))
    except MeshletError as exc:
        print(f"meshlet agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
