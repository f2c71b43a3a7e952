"""``python -m meshlet.daemon --home DIR``: the local cluster's daemon.

Started by ``meshlet install`` inside the node's network namespace, in a session of
its own, with stdout and stderr going to ``DIR/daemon.log``. It runs until SIGTERM
(pods keep running) or an API ``shutdown`` request.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from meshlet.cluster.home import ClusterHome
from meshlet.errors import MeshletError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshlet.daemon")
    parser.add_argument(
        "--home", required=True, help="the cluster's state directory (MESHLET_HOME)"
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from meshlet.daemon.server import Daemon

    try:
        daemon = Daemon(ClusterHome(Path(args.home)))
        uvloop.run(daemon.run())
    except MeshletError as error:
        print(f"meshlet daemon: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"meshlet daemon: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
