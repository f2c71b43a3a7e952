"""The agent's flags, shared by ``python -m meshlet.agent`` and the sidecar: defaults from
Istio's environment variables, the flags that must be given, the config they make."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from meshlet.agent.arguments import (
    add_agent_arguments,
    agent_config,
    missing_flags,
    parse_go_duration,
)
from meshlet.agent.keys import KeyAlgorithm


def _parse(argv: list[str], env: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_agent_arguments(parser, env, root_dir_help="the pod's root")
    parser.add_argument("--pod-ip", default=env.get("INSTANCE_IP"))
    return parser.parse_args(argv)


def test_the_environment_fills_what_the_command_line_leaves_out() -> None:
    env = {
        "POD_NAME": "httpbin-0",
        "POD_NAMESPACE": "test",
        "SERVICE_ACCOUNT": "httpbin",
        "TRUST_DOMAIN": "example.org",
        "CA_ADDR": "10.0.0.1:15012",
        "ECC_SIGNATURE_ALGORITHM": "ecdsa",
    }
    args = _parse(["--root-cert", "/root.pem", "--namespace", "other"], env)
    assert missing_flags(args) == []
    config = agent_config(args)
    assert (config.pod_name, config.namespace, config.service_account) == (
        "httpbin-0",
        "other",
        "httpbin",
    )
    assert (config.trust_domain, config.ca_address) == ("example.org", "10.0.0.1:15012")
    assert (config.root_cert_path, config.token_path, config.root_dir) == ("/root.pem", None, "/")
    assert config.key_options.algorithm is KeyAlgorithm.ECDSA


def test_defaults_without_the_environment() -> None:
    args = _parse(["--root-cert", "/r.pem", "--cert-ttl", "60", "--token", "/t"], {})
    assert missing_flags(args) == ["--pod-name", "--namespace", "--service-account"]
    assert missing_flags(args, also=[("--pod-ip", "pod_ip")])[-1] == "--pod-ip"
    config = agent_config(args)
    assert config.trust_domain == "cluster.local"
    assert config.ca_address is None
    assert config.token_path == "/t"
    assert config.cert_ttl == timedelta(seconds=60)
    assert config.key_options.algorithm is KeyAlgorithm.RSA


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h0m0s", 86400), ("90s", 90), ("1.5h", 5400), ("2h45m", 9900), ("300ms", 0.3), ("0", 0)],
)
def test_go_durations_are_read_as_go_reads_them(text: str, seconds: float) -> None:
    assert parse_go_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "1d", "h", "5 s", "1h-2m"])
def test_what_go_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="time: invalid duration"):
        parse_go_duration(text)


def test_secret_ttl_sets_the_certificate_lifetime() -> None:
    parser = argparse.ArgumentParser()
    add_agent_arguments(parser, {"SECRET_TTL": "1h"}, root_dir_help="")
    assert parser.parse_args(["--root-cert", "r.pem"]).cert_ttl == 3600
