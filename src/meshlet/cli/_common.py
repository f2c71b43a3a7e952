"""Flags and helpers shared by the verbs."""

from __future__ import annotations

import argparse

__all__ = ["add_namespace_flag", "namespace_of"]


def add_namespace_flag(parser: argparse.ArgumentParser) -> None:
    """``-n``/``--namespace`` on a verb, so it may come before or after the verb."""
    parser.add_argument(
        "-n", "--namespace", default=argparse.SUPPRESS, help="the namespace (default: default)"
    )


def namespace_of(args: argparse.Namespace) -> str:
    return getattr(args, "namespace", None) or "default"
