"""Entry point of the ``meshlet`` command.

Each verb lives in its own module with a ``register(subparsers)`` function that adds
its parser and sets ``run(args) -> int``. ``main`` maps every ``MeshletError`` to
one message on stderr and its exit code: a traceback is a bug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from meshlet import __version__
from meshlet.errors import ExitCode, MeshletError
from meshlet.kubectl.messages import KubectlError

__all__ = ["build_parser", "main"]

#: Each verb's module in ``meshlet.cli``, imported when its parser is built.
_VERBS = (
    "analyze",
    "apply",
    "cp",
    "create",
    "delete",
    "describe",
    "execute",
    "get",
    "install",
    "kube_inject",
    "label",
    "logs",
    "manifest",
    "port_forward",
    "proxy_config",
    "proxy_status",
    "rollout",
    "sidecar",
    "version",
    "wait",
    "x_describe",
)


def _verb_modules(names: Sequence[str]) -> list[ModuleType]:
    return [importlib.import_module(f"meshlet.cli.{name}") for name in names]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def build_parser(verbs: Sequence[ModuleType] | None = None) -> argparse.ArgumentParser:
    """The ``meshlet`` parser with ``verbs`` (modules; every verb when None)."""
    parser = _Parser(
        prog="meshlet",
        description=(
            "An Istio-compatible service mesh: sidecar TLS and mutual-TLS termination, "
            "mesh mTLS, and a whole mesh on one Linux host."
        ),
    )
    parser.add_argument("--version", action="version", version=f"meshlet {__version__}")
    parser.add_argument("-n", "--namespace", help="the namespace of the request (default: default)")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for verb in _verb_modules(_VERBS) if verbs is None else verbs:
        verb.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # `meshlet sidecar` keeps running as a sidecar's agent: it imports and registers only
    # its own verb, so that process does not hold what the other verbs import.
    parser = build_parser(_verb_modules(["sidecar"]) if words[:1] == ["sidecar"] else None)
    args = parser.parse_args(words)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return ExitCode.USAGE
    try:
        return int(args.run(args))
    except KubectlError as exc:
        print(exc.line, file=sys.stderr)
        return int(exc.exit_code)
    except MeshletError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return ExitCode.OK
