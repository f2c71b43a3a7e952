"""``python -m meshlet.kube.istio_init``: the ``istio-init`` container of an injected pod.

Runs once, before the pod's other containers, in the pod's network namespace with
``NET_ADMIN`` and ``NET_RAW``: it writes the capture rules of
``meshlet.runtime.capture`` (inbound to 15006, outbound to 15001, the proxy's own
traffic, by its group 1337, never captured) with ``iptables-restore``. The flags are
the pod's ``traffic.sidecar.istio.io/…`` annotations, copied by the injector;
``--dry-run`` prints the rules instead.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

from meshlet.daemon.injection import CAPTURE_ANNOTATIONS
from meshlet.runtime.capture import capture_config_from_annotations, render_capture_table

__all__ = ["main", "rules_for"]


def rules_for(argv: Sequence[str]) -> str:
    """The ``iptables-restore`` input for the injector's flags."""
    parser = argparse.ArgumentParser(prog="istio-init")
    for annotation, flag, default in CAPTURE_ANNOTATIONS:
        parser.add_argument(flag, dest=annotation, default=default)
    parser.add_argument("--dry-run", action="store_true")
    args, _ = parser.parse_known_args(argv)
    annotations = {
        annotation: getattr(args, annotation) for annotation, _, _ in CAPTURE_ANNOTATIONS
    }
    return render_capture_table(capture_config_from_annotations(annotations))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rules = rules_for(argv)
    except ValueError as error:
        print(f"istio-init: {error}", file=sys.stderr)
        return 1
    if "--dry-run" in argv:
        sys.stdout.write(rules)
        return 0
    try:
        subprocess.run(["iptables-restore", "--wait=10"], input=rules, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"istio-init: iptables-restore failed: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(rules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
