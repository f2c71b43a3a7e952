from __future__ import annotations

from typing import Any

import pytest

from meshlet.cli.port_forward import PortPair, parse_port_pairs, target_port
from meshlet.kubectl.messages import KubectlError

SERVICE: dict[str, Any] = {
    "metadata": {"name": "httpbin"},
    "spec": {
        "ports": [
            {"port": 8443, "targetPort": 9080},
            {"port": 8080, "targetPort": "http-app"},
            {"port": 80},
        ]
    },
}
POD: dict[str, Any] = {
    "spec": {"containers": [{"name": "app", "ports": [{"name": "http-app", "containerPort": 81}]}]}
}


def test_port_pairs_as_kubectl_reads_them() -> None:
    assert parse_port_pairs(["8080:80", "9000", ":443"]) == [
        PortPair(8080, 80),
        PortPair(9000, 9000),
        PortPair(0, 443),
    ]


@pytest.mark.parametrize("text", ["x:80", "80:", "70000", "1:0"])
def test_bad_port_pairs_are_refused(text: str) -> None:
    with pytest.raises(KubectlError):
        parse_port_pairs([text])


def test_a_service_port_leads_to_its_target_port() -> None:
    assert target_port(SERVICE, POD, 8443) == 9080
    assert target_port(SERVICE, POD, 8080) == 81  # a named target port
    assert target_port(SERVICE, POD, 80) == 80  # no targetPort: the same port
    with pytest.raises(KubectlError, match="does not have a service port 1234"):
        target_port(SERVICE, POD, 1234)
