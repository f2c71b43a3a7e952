from __future__ import annotations

from collections.abc import Sequence

import pytest
from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2

from meshlet.envoy.filter_chain import (
    ConnectionFacts,
    compile_filter_chains,
    find_duplicate_matches,
    select_filter_chain,
    validate_filter_chains,
)
from meshlet.errors import ConfigError, ErrorList

FilterChainMatch = listener_components_pb2.FilterChainMatch

MESH_ALPN = ("istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2")


def cidr(text: str) -> address_pb2.CidrRange:
    address, _, length = text.partition("/")
    out = address_pb2.CidrRange(address_prefix=address)
    if length:
        out.prefix_len.value = int(length)
    return out


def chain(
    name: str,
    *,
    port: int | None = None,
    prefix_ranges: Sequence[str] = (),
    server_names: Sequence[str] = (),
    transport: str = "",
    alpn: Sequence[str] = (),
    direct_source: Sequence[str] = (),
    source_type: int = FilterChainMatch.ConnectionSourceType.ANY,
    source_ranges: Sequence[str] = (),
    source_ports: Sequence[int] = (),
) -> listener_components_pb2.FilterChain:
    match = FilterChainMatch(
        prefix_ranges=[cidr(r) for r in prefix_ranges],
        server_names=list(server_names),
        transport_protocol=transport,
        application_protocols=list(alpn),
        direct_source_prefix_ranges=[cidr(r) for r in direct_source],
        source_type=source_type,
        source_prefix_ranges=[cidr(r) for r in source_ranges],
        source_ports=list(source_ports),
    )
    if port is not None:
        match.destination_port.value = port
    return listener_components_pb2.FilterChain(name=name, filter_chain_match=match)


def listener(*chains: listener_components_pb2.FilterChain) -> listener_pb2.Listener:
    return listener_pb2.Listener(name="virtualInbound", filter_chains=list(chains))


def facts(
    port: int = 9080,
    transport: str = "raw_buffer",
    *,
    dst: str = "10.244.0.7",
    src: str = "10.244.0.9",
    src_port: int = 40000,
    sni: str = "",
    alpn: Sequence[str] = (),
    direct_src: str | None = None,
) -> ConnectionFacts:
    return ConnectionFacts(
        destination_ip=dst,
        destination_port=port,
        source_ip=src,
        source_port=src_port,
        transport_protocol=transport,
        server_name=sni,
        application_protocols=tuple(alpn),
        direct_source_ip=direct_src,
    )


def chosen(lst: listener_pb2.Listener, f: ConnectionFacts) -> str | None:
    picked = select_filter_chain(lst, f)
    return None if picked is None else picked.name


# Istio's virtualInbound for a workload with 9080 PERMISSIVE (HTTP), 9081 STRICT,
# 9082 DISABLE and 9443 with the Sidecar's own TLS (mTLS DISABLE, transport tls), plus the
# passthrough chains for ports no Sidecar ingress names.
VIRTUAL_INBOUND = listener(
    chain("virtualInbound-blackhole", port=15006),
    chain("0.0.0.0_9080", port=9080, transport="tls", alpn=MESH_ALPN),
    chain("0.0.0.0_9080-plaintext", port=9080, transport="raw_buffer"),
    chain("0.0.0.0_9081", port=9081, transport="tls"),
    chain("0.0.0.0_9082", port=9082, transport="raw_buffer"),
    chain("0.0.0.0_9443", port=9443, transport="tls"),
    chain("virtualInbound-ipv4-mtls", prefix_ranges=["0.0.0.0/0"], transport="tls", alpn=MESH_ALPN),
    chain("virtualInbound-ipv4-tls", prefix_ranges=["0.0.0.0/0"], transport="tls"),
    chain("virtualInbound-ipv4-plaintext", prefix_ranges=["0.0.0.0/0"], transport="raw_buffer"),
)

MESH = ("istio-peer-exchange", "istio")
BROWSER = ("h2", "http/1.1")


@pytest.mark.parametrize(
    ("case", "connection", "expected"),
    [
        ("PERMISSIVE mesh mTLS", facts(9080, "tls", alpn=MESH), "0.0.0.0_9080"),
        ("PERMISSIVE plaintext", facts(9080, "raw_buffer"), "0.0.0.0_9080-plaintext"),
        ("PERMISSIVE plain TLS has no chain", facts(9080, "tls", alpn=BROWSER), None),
        ("STRICT mesh mTLS", facts(9081, "tls", alpn=MESH), "0.0.0.0_9081"),
        ("STRICT plain TLS matches, the handshake fails later", facts(9081, "tls"), "0.0.0.0_9081"),
        ("STRICT plaintext is reset", facts(9081, "raw_buffer"), None),
        ("DISABLE plaintext", facts(9082, "raw_buffer"), "0.0.0.0_9082"),
        ("DISABLE TLS has no chain", facts(9082, "tls", alpn=BROWSER), None),
        ("user TLS", facts(9443, "tls", alpn=BROWSER, sni="httpbin.test"), "0.0.0.0_9443"),
        ("user TLS port, plaintext is reset", facts(9443, "raw_buffer"), None),
        ("unknown port, mesh mTLS", facts(7777, "tls", alpn=MESH), "virtualInbound-ipv4-mtls"),
        ("unknown port, plain TLS", facts(7777, "tls", alpn=BROWSER), "virtualInbound-ipv4-tls"),
        ("unknown port, plaintext", facts(7777), "virtualInbound-ipv4-plaintext"),
        ("unknown port over IPv6 has no chain", facts(7777, dst="fd00::7", src="fd00::9"), None),
        ("straight to 15006", facts(15006), "virtualInbound-blackhole"),
    ],
)
def test_istio_virtual_inbound(
    case: str, connection: ConnectionFacts, expected: str | None
) -> None:
    assert chosen(VIRTUAL_INBOUND, connection) == expected, case


def test_no_backtracking_to_a_less_specific_chain() -> None:
    lst = listener(chain("user-tls", port=9080, transport="tls"), chain("catch-all"))
    # The port step keeps only the 9080 chain; its transport step then fails. Envoy does not
    # go back to the catch-all, so plaintext to 9080 gets no chain and is reset.
    assert chosen(lst, facts(9080, "raw_buffer")) is None
    assert chosen(lst, facts(9080, "tls")) == "user-tls"
    assert chosen(lst, facts(9090, "raw_buffer")) == "catch-all"
    assert chosen(lst, facts(9090, "tls")) == "catch-all"


def test_default_filter_chain_only_when_nothing_matches() -> None:
    lst = listener(chain("user-tls", port=9080, transport="tls"))
    lst.default_filter_chain.name = "default"
    assert chosen(lst, facts(9080, "raw_buffer")) == "default"
    assert chosen(lst, facts(9080, "tls")) == "user-tls"
    table = compile_filter_chains(lst)
    assert table.select_index(facts(9080, "raw_buffer")) is None
    assert table.default_filter_chain is not None


SERVER_NAMES = listener(
    chain("exact", server_names=["www.example.com"]),
    chain("wild-example", server_names=["*.example.com"]),
    chain("wild-com", server_names=["*.com"]),
    chain("other", server_names=["api.example.org", "*.example.net"]),
    chain("any-name"),
)


@pytest.mark.parametrize(
    ("sni", "expected"),
    [
        ("www.example.com", "exact"),
        ("WWW.Example.COM", "exact"),  # SNI is compared lower-cased
        ("api.example.com", "wild-example"),
        ("a.b.example.com", "wild-example"),  # the longest wildcard suffix wins
        ("example.com", "wild-com"),  # "*.example.com" needs a label before it
        ("foo.com", "wild-com"),
        ("api.example.org", "other"),
        ("x.example.net", "other"),
        ("example.org", "any-name"),
        ("", "any-name"),
        ("localhost", "any-name"),
        ("com.", "any-name"),  # a trailing dot is no suffix
    ],
)
def test_server_names(sni: str, expected: str) -> None:
    assert chosen(SERVER_NAMES, facts(443, "tls", sni=sni)) == expected


def test_server_name_match_does_not_fall_back() -> None:
    lst = listener(chain("sni-tls", server_names=["*.example.com"], transport="tls"), chain("any"))
    assert chosen(lst, facts(443, "tls", sni="a.example.com")) == "sni-tls"
    assert chosen(lst, facts(443, "raw_buffer", sni="a.example.com")) is None
    assert chosen(lst, facts(443, "raw_buffer")) == "any"


def test_configured_server_names_are_lower_cased() -> None:
    lst = listener(chain("upper", server_names=["*.Example.COM"]))
    assert chosen(lst, facts(443, "tls", sni="www.example.com")) == "upper"


def test_destination_port_comes_before_server_name() -> None:
    lst = listener(chain("by-port", port=443), chain("by-name", server_names=["a.example.com"]))
    assert chosen(lst, facts(443, "tls", sni="a.example.com")) == "by-port"
    assert chosen(lst, facts(8443, "tls", sni="a.example.com")) == "by-name"
    assert chosen(lst, facts(8443, "tls", sni="b.example.com")) is None


def test_destination_ip_longest_prefix() -> None:
    lst = listener(
        chain("wide", prefix_ranges=["10.0.0.0/8"]),
        chain("narrow", prefix_ranges=["10.1.0.0/16", "192.168.1.1/32"]),
        chain("host", prefix_ranges=["10.1.2.3"]),  # no prefix_len: /0, as Envoy reads it
        chain("v6", prefix_ranges=["fd00::/8"]),
        chain("any"),
    )
    assert chosen(lst, facts(dst="10.1.2.3")) == "narrow"
    assert chosen(lst, facts(dst="10.2.0.1")) == "wide"
    assert chosen(lst, facts(dst="192.168.1.1")) == "narrow"
    assert chosen(lst, facts(dst="172.16.0.1")) == "host"  # 0.0.0.0/0 written out
    assert chosen(lst, facts(dst="fd00::1", src="fd00::2")) == "v6"
    assert chosen(lst, facts(dst="2001:db8::1", src="2001:db8::2")) == "any"


def test_destination_ip_does_not_fall_back() -> None:
    lst = listener(chain("narrow-tls", prefix_ranges=["10.1.0.0/16"], transport="tls"))
    lst.filter_chains.append(chain("wide", prefix_ranges=["10.0.0.0/8"]))
    assert chosen(lst, facts(dst="10.1.0.5", transport="raw_buffer")) is None
    assert chosen(lst, facts(dst="10.2.0.5", transport="raw_buffer")) == "wide"


def test_transport_then_application_protocols_in_client_order() -> None:
    lst = listener(
        chain("h2", transport="tls", alpn=["h2"]),
        chain("h1", transport="tls", alpn=["http/1.1"]),
        chain("tls-any", transport="tls"),
        chain("plain"),
    )
    assert chosen(lst, facts(transport="tls", alpn=["http/1.1", "h2"])) == "h1"
    assert chosen(lst, facts(transport="tls", alpn=["h2", "http/1.1"])) == "h2"
    assert chosen(lst, facts(transport="tls", alpn=["spdy/3", "http/1.1"])) == "h1"
    assert chosen(lst, facts(transport="tls", alpn=["spdy/3"])) == "tls-any"
    assert chosen(lst, facts(transport="tls")) == "tls-any"
    assert chosen(lst, facts(transport="raw_buffer")) == "plain"


def test_direct_source_ip_uses_the_direct_peer() -> None:
    lst = listener(chain("lb", direct_source=["10.9.0.0/16"]), chain("any"))
    assert chosen(lst, facts(src="10.9.0.1")) == "lb"
    # A PROXY-protocol-style source that differs from the directly connected peer.
    assert chosen(lst, facts(src="10.9.0.1", direct_src="10.8.0.1")) == "any"
    assert chosen(lst, facts(src="192.0.2.1", direct_src="10.9.1.1")) == "lb"


def test_source_type() -> None:
    local_type = FilterChainMatch.ConnectionSourceType.SAME_IP_OR_LOOPBACK
    external_type = FilterChainMatch.ConnectionSourceType.EXTERNAL
    both = listener(
        chain("local", source_type=local_type), chain("external", source_type=external_type)
    )
    assert chosen(both, facts(src="127.0.0.1", dst="127.0.0.1")) == "local"
    assert chosen(both, facts(src="10.244.0.7", dst="10.244.0.7")) == "local"  # same IP
    assert chosen(both, facts(src="::1", dst="::1")) == "local"
    assert chosen(both, facts(src="10.244.0.9", dst="10.244.0.7")) == "external"
    ext_or_any = listener(chain("external", source_type=external_type), chain("any"))
    assert chosen(ext_or_any, facts(src="127.0.0.1", dst="127.0.0.1")) == "any"
    assert chosen(ext_or_any, facts(src="10.244.0.9")) == "external"
    local_only = listener(chain("local", source_type=local_type))
    assert chosen(local_only, facts(src="10.244.0.9")) is None


def test_source_ip_and_port() -> None:
    lst = listener(
        chain("pinned", source_ranges=["10.0.0.0/8"], source_ports=[1234, 1235]),
        chain("range", source_ranges=["10.0.0.0/8"]),
        chain("host", source_ranges=["10.0.0.5/32"]),
    )
    assert chosen(lst, facts(src="10.0.0.1", src_port=1234)) == "pinned"
    assert chosen(lst, facts(src="10.0.0.1", src_port=5000)) == "range"
    assert chosen(lst, facts(src="10.0.0.5", src_port=1234)) == "host"
    assert chosen(lst, facts(src="11.0.0.1")) is None


def test_precedence_is_envoys_order() -> None:
    # Each pair differs in two criteria; the earlier criterion in Envoy's order decides.
    lst = listener(
        chain("by-transport", transport="tls"),
        chain("by-alpn", alpn=["h2"]),
    )
    assert chosen(lst, facts(transport="tls", alpn=["h2"])) == "by-transport"
    lst = listener(chain("by-alpn", alpn=["h2"]), chain("by-source", source_ranges=["10.0.0.0/8"]))
    assert chosen(lst, facts(src="10.0.0.1", alpn=["h2"])) == "by-alpn"
    lst = listener(
        chain("by-ip", prefix_ranges=["10.244.0.0/16"]), chain("by-name", server_names=["x"])
    )
    assert chosen(lst, facts(dst="10.244.0.7", sni="x")) == "by-ip"


def test_table_is_reusable_and_matches_one_shot() -> None:
    table = compile_filter_chains(VIRTUAL_INBOUND)
    for port in (9080, 9081, 9082, 9443, 7777, 15006):
        for transport, alpn in (("tls", MESH), ("tls", BROWSER), ("raw_buffer", ())):
            f = facts(port, transport, alpn=alpn)
            picked = table.select(f)
            assert picked == select_filter_chain(VIRTUAL_INBOUND, f)


def test_bad_addresses_in_facts_are_value_errors() -> None:
    with pytest.raises(ValueError, match="destination_ip"):
        select_filter_chain(VIRTUAL_INBOUND, facts(dst="not-an-ip"))


# --- what Envoy refuses when it loads a listener ---------------------------------------


def test_no_duplicates_in_istio_shapes() -> None:
    assert find_duplicate_matches(VIRTUAL_INBOUND) == ()
    validate_filter_chains(VIRTUAL_INBOUND)


def test_identical_matches_are_duplicates() -> None:
    lst = listener(chain("a", port=9080, transport="tls"), chain("b", port=9080, transport="tls"))
    (dup,) = find_duplicate_matches(lst)
    assert (dup.first, dup.second, dup.first_index, dup.second_index) == ("a", "b", 0, 1)
    assert dup.message == "filter chain 'b' has the same matching rules as 'a'"


def test_overlapping_lists_are_duplicates() -> None:
    lst = listener(
        chain("a", server_names=["a.example.com", "b.example.com"]),
        chain("b", server_names=["B.example.com", "c.example.com"]),
        chain("c", server_names=["*.example.com"]),
        chain("", prefix_ranges=["10.1.2.3/8"]),
        chain("", prefix_ranges=["10.0.0.0/8"]),  # the same range once masked
    )
    found = find_duplicate_matches(lst)
    assert [(d.first, d.second) for d in found] == [("a", "b"), ("#3", "#4")]


def test_validate_reports_every_problem() -> None:
    lst = listener(
        chain("partial", server_names=["www.*.com"]),
        chain("bad-cidr", prefix_ranges=["10.0.0.300/8"]),
        chain("ok", port=1),
    )
    lst.filter_chains[2].filter_chain_match.address_suffix = "x"
    with pytest.raises(ErrorList) as info:
        validate_filter_chains(lst)
    fields = [e.field for e in info.value.errors]
    assert fields == [
        "filter_chains[0].filter_chain_match.server_names[0]",
        "filter_chains[1].filter_chain_match.prefix_ranges[0]",
        "filter_chains[2].filter_chain_match.address_suffix",
    ]
    assert "unimplemented" in info.value.errors[2].message


def test_validate_reports_duplicates_as_config_errors() -> None:
    lst = listener(chain("a", port=80), chain("b", port=80))
    with pytest.raises(ConfigError, match="same matching rules") as info:
        validate_filter_chains(lst)
    assert info.value.field == "filter_chains[1]"


def test_filter_chain_matcher_is_refused() -> None:
    lst = listener(chain("a"))
    lst.filter_chain_matcher.SetInParent()
    with pytest.raises(ConfigError) as info:
        select_filter_chain(lst, facts())
    assert info.value.field == "filter_chain_matcher"
