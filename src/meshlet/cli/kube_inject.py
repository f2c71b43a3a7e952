"""``meshlet kube-inject -f FILE``: the sidecar added offline, as ``istioctl kube-inject``.

Reads the manifests (files, directories, ``-`` for stdin), adds the sidecar to every
Pod and every workload's pod template exactly as the control plane's webhook does on
Kubernetes (``meshlet.kube.admission.inject_objects``), and prints the documents as
YAML separated by ``---`` (to stdout, or to ``-o FILE``). ``--set`` takes the same
flags as ``manifest generate`` and ``install --kubeconfig`` (the image's hub and tag,
the trust domain), so the sidecar matches the installed control plane. Pure apart
from reading and writing the files.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.errors import LoadError, Location, SourceError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "kube-inject", help="add the sidecar to Kubernetes manifests (as istioctl kube-inject)"
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="append",
        required=True,
        metavar="FILE",
        help="a manifest file, a directory, or - for stdin",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument(
        "--set", dest="set_flags", action="append", default=[], metavar="NAME=VALUE"
    )
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


def _documents(paths: list[str]) -> list[Any]:
    from meshlet.resources.loader import read_sources
    from meshlet.resources.yamlsource import parse_documents

    documents: list[Any] = []
    for filename, text in read_sources(paths, sys.stdin):
        for document in parse_documents(text, filename):
            if not isinstance(document.data, dict):
                raise LoadError("a manifest must be a YAML mapping", location=document.location)
            documents.append(document.data)
    if not documents:
        where = ", ".join(paths)
        raise LoadError(f"no objects passed: {where} holds no resources", location=Location(where))
    return documents


def run(args: argparse.Namespace) -> int:
    from meshlet.kube.admission import inject_objects
    from meshlet.kube.settings import kube_settings_from_flags
    from meshlet.kubectl.encode import to_yaml

    settings = kube_settings_from_flags(args.set_flags)
    injected = inject_objects(
        _documents(args.filenames), settings=settings.injection(), namespace=namespace_of(args)
    )
    text = "---\n".join(to_yaml(obj) for obj in injected)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as error:
            raise SourceError(
                f"cannot write {args.output}: {error.strerror}", location=Location(args.output)
            ) from None
    else:
        sys.stdout.write(text)
    return 0
