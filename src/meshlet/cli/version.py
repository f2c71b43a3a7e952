"""``meshlet version``."""

from __future__ import annotations

import argparse

from meshlet import __version__

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("version", help="print the version of meshlet")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"meshlet {__version__}")
    return 0
