"""The agent's settings on a command line, shared by ``python -m meshlet.agent`` and the
sidecar (``python -m meshlet.proxy.sidecar``), which runs the same agent.

Each identity flag defaults to the environment variable Istio's pilot-agent reads
(``POD_NAME``, ``POD_NAMESPACE``, ``SERVICE_ACCOUNT``, ``TRUST_DOMAIN``, ``CA_ADDR``,
``ECC_SIGNATURE_ALGORITHM``, ``SECRET_TTL`` as a Go duration such as ``24h0m0s``); the
environment is passed in, not read here.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta

from meshlet.agent.agent import AgentConfig
from meshlet.agent.keys import KeyAlgorithm, KeyOptions
from meshlet.agent.workload_cert import DEFAULT_CERT_TTL

__all__ = ["add_agent_arguments", "agent_config", "missing_flags", "parse_go_duration"]

_IDENTITY = (
    ("--pod-name", "pod_name"),
    ("--namespace", "namespace"),
    ("--service-account", "service_account"),
)


def add_agent_arguments(
    parser: argparse.ArgumentParser, env: Mapping[str, str], *, root_dir_help: str
) -> None:
    """Add the agent's flags to ``parser``, with defaults from ``env``."""
    parser.add_argument("--pod-name", default=env.get("POD_NAME"))
    parser.add_argument("--namespace", default=env.get("POD_NAMESPACE"))
    parser.add_argument("--service-account", default=env.get("SERVICE_ACCOUNT"))
    parser.add_argument("--trust-domain", default=env.get("TRUST_DOMAIN", "cluster.local"))
    parser.add_argument("--ca-address", default=env.get("CA_ADDR"), help="host:port of the CA")
    parser.add_argument("--root-cert", required=True, help="the mesh root certificate (PEM)")
    parser.add_argument("--token", help="the pod's token file")
    parser.add_argument("--root-dir", default="/", help=root_dir_help)
    ttl = env.get("SECRET_TTL")
    parser.add_argument(
        "--cert-ttl",
        type=float,
        default=parse_go_duration(ttl).total_seconds() if ttl else DEFAULT_CERT_TTL.total_seconds(),
        help="the workload certificate's lifetime in seconds (default: SECRET_TTL, or 24h)",
    )
    parser.add_argument(
        "--ecdsa",
        action="store_true",
        default=env.get("ECC_SIGNATURE_ALGORITHM", "").upper() == "ECDSA",
        help="an ECDSA P-256 workload key instead of RSA 2048",
    )


def missing_flags(args: argparse.Namespace, also: Iterable[tuple[str, str]] = ()) -> list[str]:
    """The identity flags (and ``also``: ``(flag, attribute)``) given neither on the command
    line nor in the environment."""
    return [flag for flag, name in (*_IDENTITY, *also) if not getattr(args, name)]


def agent_config(args: argparse.Namespace) -> AgentConfig:
    """The agent's configuration from flags added by ``add_agent_arguments``."""
    return AgentConfig(
        pod_name=args.pod_name,
        namespace=args.namespace,
        service_account=args.service_account,
        trust_domain=args.trust_domain,
        ca_address=args.ca_address,
        root_cert_path=args.root_cert,
        token_path=args.token,
        root_dir=args.root_dir,
        cert_ttl=timedelta(seconds=args.cert_ttl),
        key_options=KeyOptions(algorithm=KeyAlgorithm.ECDSA if args.ecdsa else KeyAlgorithm.RSA),
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> timedelta:
    """A duration as Go's ``time.ParseDuration`` reads it (``24h0m0s``, ``90s``, ``1.5h``).

    Raises ``ValueError`` for anything else, as Go refuses it (a bare number included,
    except ``0``).
    """
    if text == "0":
        return timedelta(0)
    position, seconds = 0, 0.0
    while position < len(text):
        part = _DURATION_PART.match(text, position)
        if part is None:
            raise ValueError(f'time: invalid duration "{text}"')
        seconds += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        position = part.end()
    if not text:
        raise ValueError('time: invalid duration ""')
    return timedelta(seconds=seconds)
