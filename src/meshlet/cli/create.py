"""``meshlet create namespace|secret generic|secret tls``, as kubectl creates them.

The object is built by ``meshlet.kubectl.create`` from the flags (the files named are
read here). ``--dry-run=client`` sends nothing; ``-o yaml|json|name`` prints the
object (for a real create, as the cluster stored it); otherwise kubectl's line
``secret/x created``. A Secret carries the namespace when ``-n`` was given, as
kubectl's does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from meshlet.cli import _cluster
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.kubectl import create as builders
from meshlet.kubectl.encode import to_json, to_yaml
from meshlet.kubectl.messages import KubectlError, created, name_prefix
from meshlet.resources.kinds import lookup

__all__ = ["register"]

_OUTPUTS = ("yaml", "json", "name")


def _common_flags(parser: argparse.ArgumentParser) -> None:
    add_namespace_flag(parser)
    _cluster.add_dry_run_flag(parser)
    parser.add_argument("-o", "--output", choices=_OUTPUTS, help="print the object: yaml|json|name")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("create", help="create a namespace or a secret")
    add_namespace_flag(parser)
    kinds = parser.add_subparsers(dest="create_kind", metavar="KIND", required=True)
    namespace = kinds.add_parser("namespace", aliases=["ns"], help="create a namespace")
    namespace.add_argument("name", metavar="NAME")
    _common_flags(namespace)
    namespace.set_defaults(run=run_namespace)

    secret = kinds.add_parser("secret", help="create a secret")
    secret_kinds = secret.add_subparsers(dest="secret_kind", metavar="TYPE", required=True)
    generic = secret_kinds.add_parser("generic", help="a secret from files and literal values")
    generic.add_argument("name", metavar="NAME")
    generic.add_argument(
        "--from-file",
        action="append",
        default=[],
        metavar="[KEY=]PATH",
        help="a file (key: its name) or a directory (each regular file in it); repeatable",
    )
    generic.add_argument(
        "--from-literal", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    generic.add_argument("--type", default="", help="the secret's type (default Opaque)")
    _common_flags(generic)
    generic.set_defaults(run=run_secret_generic)

    tls = secret_kinds.add_parser("tls", help="a kubernetes.io/tls secret from a key pair")
    tls.add_argument("name", metavar="NAME")
    tls.add_argument("--cert", required=True, metavar="PATH", help="PEM certificate (chain)")
    tls.add_argument("--key", required=True, metavar="PATH", help="PEM private key")
    _common_flags(tls)
    tls.set_defaults(run=run_secret_tls)


def _read(path: str, *, opening: bool = True) -> bytes:
    """A file's bytes, or kubectl's message when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        if opening:
            raise KubectlError(f"open {path}: {reason}") from None
        raise KubectlError(f"error reading {path}: {reason}") from None


def _file_sources(sources: list[str]) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    for source in sources:
        key, path = builders.parse_file_source(source)
        if not os.path.exists(path):
            raise KubectlError(f"error reading {path}: no such file or directory")
        if os.path.isdir(path):
            if "=" in source:
                raise KubectlError("cannot give a key name for a directory path")
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if os.path.isfile(full):
                    files.append((name, _read(full, opening=False)))
        else:
            files.append((key, _read(path, opening=False)))
    return files


def run_namespace(args: argparse.Namespace) -> int:
    return _create(args, builders.namespace_object(args.name))


def run_secret_generic(args: argparse.Namespace) -> int:
    obj = builders.secret_generic(
        args.name,
        namespace=_cluster.explicit_namespace(args),
        literals=args.from_literal,
        files=_file_sources(args.from_file),
        secret_type=args.type,
    )
    return _create(args, obj)


def run_secret_tls(args: argparse.Namespace) -> int:
    obj = builders.secret_tls(
        args.name,
        cert=_read(args.cert),
        key=_read(args.key),
        namespace=_cluster.explicit_namespace(args),
    )
    return _create(args, obj)


def _print_object(obj: dict[str, Any], output: str) -> None:
    if output == "yaml":
        sys.stdout.write(to_yaml(obj))
    elif output == "json":
        sys.stdout.write(to_json(obj))


@_cluster.server_errors
def _create(args: argparse.Namespace, obj: dict[str, Any]) -> int:
    info = lookup(str(obj["apiVersion"]), str(obj["kind"]))
    if info is None:  # the builders only make kinds meshlet knows
        raise KubectlError(f"no kind {obj['kind']} in {obj['apiVersion']}")
    name = str(obj["metadata"]["name"])
    output = args.output
    if args.dry_run == "client":
        if output == "name":
            print(f"{name_prefix(info)}/{name}")
        elif output:
            _print_object(obj, output)
        else:
            print(created(info, name, dry_run=True))
        return 0
    client = _cluster.open_client()
    namespace = namespace_of(args)
    client.create([obj], namespace=namespace, dry_run=args.dry_run == "server")
    if output == "name":
        print(f"{name_prefix(info)}/{name}")
    elif output:
        stored = obj
        if args.dry_run != "server":
            found = client.get(
                _cluster.kind_key(info),
                namespace=namespace if info.namespaced else None,
                names=[name],
            )
            stored = found[0] if found else obj
        _print_object(stored, output)
    else:
        print(created(info, name) + _cluster.dry_run_suffix(args.dry_run))
    return 0
