"""The rendered rule sets: kube-proxy's Service NAT and istio-init's capture."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from meshlet.runtime.capture import (
    CaptureConfig,
    capture_config_from_annotations,
    render_capture_table,
)
from meshlet.runtime.services import (
    Endpoint,
    Protocol,
    ServicePortRules,
    endpoint_chain,
    render_service_tables,
    service_chain,
)

VIP = IPv4Address("10.96.0.20")


def rules_of(text: str, chain: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def httpbin(*endpoints: Endpoint) -> ServicePortRules:
    return ServicePortRules("test", "httpbin", VIP, 8000, "http", endpoints=endpoints)


def test_one_endpoint_is_a_plain_dnat():
    text = render_service_tables([httpbin(Endpoint(IPv4Address("10.244.0.5"), 80))])
    svc = service_chain(httpbin())
    assert rules_of(text, "KUBE-SERVICES")[-1] == (
        "-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m tcp --dport 8000 -m comment "
        f'--comment "test/httpbin:http cluster IP" -j {svc}'
    )
    [pick] = rules_of(text, svc)
    assert "statistic" not in pick
    sep = endpoint_chain(httpbin(), Endpoint(IPv4Address("10.244.0.5"), 80))
    assert rules_of(text, sep) == [
        f'-A {sep} -s 10.244.0.5/32 -m comment --comment "test/httpbin:http" -j KUBE-MARK-MASQ',
        f'-A {sep} -p tcp -m comment --comment "test/httpbin:http" -m tcp '
        "-j DNAT --to-destination 10.244.0.5:80",
    ]
    assert text.count("COMMIT") == 2
    assert text.startswith("*filter\n") and "\n*nat\n" in text and text.endswith("COMMIT\n")


def test_several_endpoints_share_by_probability():
    eps = [Endpoint(IPv4Address(f"10.244.0.{n}"), 80) for n in (7, 5, 6)]
    text = render_service_tables([httpbin(*eps)])
    picks = rules_of(text, service_chain(httpbin()))
    assert [
        p.split("--probability ")[1].split()[0] if "probability" in p else None for p in picks
    ] == [
        "0.3333333333",
        "0.5000000000",
        None,
    ]
    # endpoints in address order, each with its own chain
    assert [
        "10.244.0.5:80" in picks[0],
        "10.244.0.6:80" in picks[1],
        "10.244.0.7:80" in picks[2],
    ] == [
        True,
        True,
        True,
    ]
    assert all("-m statistic --mode random" in p for p in picks[:2])


def test_unready_endpoints_are_left_out_and_no_endpoint_rejects():
    text = render_service_tables(
        [
            httpbin(Endpoint(IPv4Address("10.244.0.5"), 80, ready=False)),
            ServicePortRules("test", "web", IPv4Address("10.96.0.21"), 80, "", Protocol.UDP),
        ]
    )
    assert "DNAT" not in text
    rejects = [line for line in text.splitlines() if "REJECT" in line]
    assert rejects == [
        "-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m tcp --dport 8000 -m comment --comment "
        '"test/httpbin:http has no endpoints" -j REJECT --reject-with icmp-port-unreachable',
        "-A KUBE-SERVICES -d 10.96.0.21/32 -p udp -m udp --dport 80 -m comment --comment "
        '"test/web: has no endpoints" -j REJECT --reject-with icmp-port-unreachable',
    ]


def test_output_is_sorted_and_stable():
    a = httpbin(Endpoint(IPv4Address("10.244.0.5"), 80))
    b = ServicePortRules(
        "default",
        "sleep",
        IPv4Address("10.96.0.30"),
        80,
        "",
        endpoints=(Endpoint(IPv4Address("10.244.0.9"), 80),),
    )
    assert render_service_tables([a, b]) == render_service_tables([b, a])
    text = render_service_tables([a, b])
    assert text.index("default/sleep:") < text.index("test/httpbin:http")
    assert service_chain(a).startswith("KUBE-SVC-") and len(service_chain(a)) == 25


def test_two_ports_on_one_address_and_port_are_refused():
    a = httpbin()
    b = ServicePortRules("test", "other", VIP, 8000)
    with pytest.raises(ValueError, match="claimed by two"):
        render_service_tables([a, b])


def test_node_hooks_are_kube_proxys():
    text = render_service_tables([])
    for line in (
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
    ):
        assert line in text.splitlines()


# -- capture -------------------------------------------------------------------------


def test_capture_table_is_istio_inits():
    text = render_capture_table()
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert "-A PREROUTING -p tcp -j ISTIO_INBOUND" in lines
    assert "-A OUTPUT -p tcp -j ISTIO_OUTPUT" in lines
    assert rules_of(text, "ISTIO_INBOUND") == [
        "-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -m tcp --dport 22 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -m tcp --dport 15020 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
    ]
    assert rules_of(text, "ISTIO_IN_REDIRECT") == [
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"
    ]
    assert rules_of(text, "ISTIO_REDIRECT") == [
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"
    ]
    output = rules_of(text, "ISTIO_OUTPUT")
    assert output[0] == "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN"
    assert output[1] == "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN"
    assert "-A ISTIO_OUTPUT -p tcp -m tcp --dport 53 -j RETURN" in output
    assert "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN" in output
    assert output[-1] == "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"
    assert "uid-owner" not in text


def test_capture_follows_the_pods_annotations():
    config = capture_config_from_annotations(
        {
            "traffic.sidecar.istio.io/includeInboundPorts": "9080, 9081,15021",
            "traffic.sidecar.istio.io/excludeOutboundPorts": "3306",
            "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0.0/8",
            "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.96.0.0/12",
        }
    )
    text = render_capture_table(config)
    assert rules_of(text, "ISTIO_INBOUND") == [
        "-A ISTIO_INBOUND -p tcp -m tcp --dport 9080 -j ISTIO_IN_REDIRECT",
        "-A ISTIO_INBOUND -p tcp -m tcp --dport 9081 -j ISTIO_IN_REDIRECT",
    ]
    output = rules_of(text, "ISTIO_OUTPUT")
    assert "-A ISTIO_OUTPUT -p tcp -m tcp --dport 3306 -j RETURN" in output
    assert output[-3:] == [
        "-A ISTIO_OUTPUT -d 10.0.0.0/8 -j RETURN",
        "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT",
        "-A ISTIO_OUTPUT -j RETURN",
    ]
    assert render_capture_table(CaptureConfig()) == render_capture_table()
    assert CaptureConfig(exclude_outbound_cidrs=(IPv4Network("1.2.3.0/24"),)) != CaptureConfig()


def test_bad_annotations_name_themselves():
    with pytest.raises(ValueError, match="excludeInboundPorts: 'http' is not a port number"):
        capture_config_from_annotations({"traffic.sidecar.istio.io/excludeInboundPorts": "http"})
    with pytest.raises(ValueError, match="excludeOutboundIPRanges"):
        capture_config_from_annotations(
            {"traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0/33"}
        )
    with pytest.raises(ValueError, match="not in 1-65535"):
        CaptureConfig(exclude_inbound_ports=(0,))
