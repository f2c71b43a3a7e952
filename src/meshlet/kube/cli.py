"""The cluster side of ``meshlet install`` and ``meshlet uninstall`` (``--kubeconfig``).

``meshlet.cli.install`` hands over here when ``--kubeconfig`` is given: nothing of
the local cluster (root, network namespaces, the daemon) is touched. Each object
applied or deleted is reported on stderr as kubectl reports it; the result lines are
istioctl's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from meshlet.ca.signing import Signer, make_self_signed_root
from meshlet.errors import UsageError
from meshlet.kube.settings import KubeSettings, kube_settings_from_flags

__all__ = ["add_cluster_flags", "run_cluster_install", "run_cluster_uninstall"]


def add_cluster_flags(parser: argparse.ArgumentParser, *, install: bool) -> None:
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="install into the Kubernetes cluster of this kubeconfig instead of the local one",
    )
    parser.add_argument("--context", help="the kubeconfig context to use")
    if install:
        parser.add_argument(
            "--readiness-timeout",
            type=float,
            default=300.0,
            metavar="SECONDS",
            help="how long to wait for the control plane (0: do not wait)",
        )


def _report(line: str) -> None:
    print(line, file=sys.stderr)


def _new_signer(settings: KubeSettings) -> Signer:
    return make_self_signed_root(settings.mesh.trust_domain, now=datetime.now(UTC))


def run_cluster_install(args: argparse.Namespace) -> int:
    from meshlet.kube.client import connect  # the Kubernetes client: only when it is used
    from meshlet.kube.install import install

    settings = kube_settings_from_flags(args.set_flags)
    if args.readiness_timeout < 0:
        raise UsageError("--readiness-timeout may not be negative")

    async def go() -> None:
        async with await connect(args.kubeconfig, context=args.context) as api:
            await install(
                api,
                settings,
                set_flags=args.set_flags,
                new_signer=lambda: _new_signer(settings),
                report=_report,
                readiness_timeout=args.readiness_timeout,
            )

    asyncio.run(go())
    print("✔ Istio core installed ⛵️")
    print("✔ Istiod installed 🧠")
    print("✔ Installation complete")
    return 0


def run_cluster_uninstall(args: argparse.Namespace) -> int:
    from meshlet.kube.client import connect
    from meshlet.kube.install import uninstall

    settings = kube_settings_from_flags(getattr(args, "set_flags", []) or [])

    async def go() -> None:
        async with await connect(args.kubeconfig, context=args.context) as api:
            await uninstall(api, settings, new_signer=lambda: _new_signer(settings), report=_report)

    asyncio.run(go())
    print("✔ Uninstall complete")
    return 0
