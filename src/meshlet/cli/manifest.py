"""``meshlet manifest generate [--set …] [--ca-dir DIR]``: what a cluster install applies.

Prints, as YAML documents separated by ``---``, every object ``meshlet install
--kubeconfig`` applies (``meshlet.kube.manifests``), so the output can be reviewed or
applied with ``kubectl apply --server-side``. The mesh CA comes from ``--ca-dir``
(Istio's ``cacerts`` layout: ``ca-cert.pem``, ``ca-key.pem``, ``root-cert.pem``,
``cert-chain.pem``); without it a new self-signed root is made for this output, so
two runs differ only in the CA's Secret, the root ConfigMaps and the webhook's
``caBundle``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshlet.ca.signing import Signer

__all__ = ["load_or_make_signer", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "manifest", help="print what install --kubeconfig applies to a cluster"
    )
    verbs = parser.add_subparsers(dest="manifest_verb", metavar="VERB")
    generate = verbs.add_parser("generate", help="print the manifests of a cluster install")
    generate.add_argument(
        "--set", dest="set_flags", action="append", default=[], metavar="NAME=VALUE"
    )
    generate.add_argument(
        "--ca-dir", metavar="DIR", help="the mesh CA to use, in Istio's cacerts layout"
    )
    generate.set_defaults(run=run_generate)


def load_or_make_signer(ca_dir: str | None, trust_domain: str) -> Signer:
    """The plug-in CA in ``ca_dir``, or a new self-signed root."""
    from datetime import UTC, datetime

    from meshlet.ca.signing import PLUGIN_CA_FILES, load_plugin_ca, make_self_signed_root
    from meshlet.errors import Location, SourceError

    if ca_dir is None:
        return make_self_signed_root(trust_domain, now=datetime.now(UTC))
    files: dict[str, bytes] = {}
    for name in PLUGIN_CA_FILES:
        path = Path(ca_dir) / name
        try:
            files[name] = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise SourceError(
                f"cannot read {path}: {error.strerror}", location=Location(str(path))
            ) from None
    return load_plugin_ca(files)


def run_generate(args: argparse.Namespace) -> int:
    from meshlet.kube.manifests import generate_manifests
    from meshlet.kube.settings import kube_settings_from_flags
    from meshlet.kubectl.encode import to_yaml

    settings = kube_settings_from_flags(args.set_flags)
    signer = load_or_make_signer(args.ca_dir, settings.mesh.trust_domain)
    objects = generate_manifests(settings, signer, set_flags=args.set_flags)
    sys.stdout.write("---\n".join(to_yaml(obj) for obj in objects))
    return 0
