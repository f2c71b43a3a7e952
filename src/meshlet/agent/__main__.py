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

import uvloop

from meshlet.agent.agent import Agent, AgentConfig
from meshlet.agent.arguments import add_agent_arguments, agent_config, missing_flags
from meshlet.errors import MeshletError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m meshlet.agent",
        description="Serve a pod's workload certificate and file secrets over SDS.",
    )
    add_agent_arguments(
        parser, os.environ, root_dir_help="the pod's root; the SDS socket is under it"
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
    missing = missing_flags(args)
    if missing:
        print(f"meshlet agent: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s\t%(levelname)s\t%(name)s\t%(message)s",
    )
    config = agent_config(args)
    try:
        uvloop.run(_serve(config))
    except MeshletError as exc:
        print(f"meshlet agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
