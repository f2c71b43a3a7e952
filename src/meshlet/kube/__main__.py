"""``python -m meshlet.kube``: the control plane in a Kubernetes cluster.

Flags: ``--in-cluster`` (the pod's service account) or ``--kubeconfig FILE``;
``--ca-dir DIR`` (the plug-in CA, Istio's ``cacerts`` layout, mounted from the
``cacerts`` Secret); ``--set NAME=VALUE`` (the flags ``install`` was given);
``--host`` (default ``0.0.0.0``). Logs go to stderr; a configuration problem is
one line and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

from meshlet.errors import MeshletError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshlet.kube")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--in-cluster", action="store_true")
    where.add_argument("--kubeconfig", metavar="FILE")
    parser.add_argument("--ca-dir", required=True, metavar="DIR")
    parser.add_argument("--set", dest="set_flags", action="append", default=[])
    parser.add_argument("--host", default="0.0.0.0")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )

    from meshlet.cli.manifest import load_or_make_signer
    from meshlet.kube.client import connect
    from meshlet.kube.controlplane import ControlPlane
    from meshlet.kube.settings import kube_settings_from_flags

    async def serve() -> None:
        settings = kube_settings_from_flags(args.set_flags)
        signer = load_or_make_signer(args.ca_dir, settings.mesh.trust_domain)
        async with await connect(args.kubeconfig, in_cluster=args.in_cluster) as api:
            await ControlPlane(api, settings, signer).run(args.host)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
    except MeshletError as error:
        print(f"error: {error}", file=sys.stderr)
        return int(error.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
