"""Envoy's filter-chain match, on Envoy v3 ``Listener`` protos.

Theory of operation: Envoy picks a listener's filter chain for a new connection by
narrowing the set of chains one criterion at a time, in this fixed order:

1. destination port, 2. destination IP (``prefix_ranges``), 3. server name (SNI),
4. transport protocol, 5. application protocols (ALPN), 6. directly connected source IP,
7. source type, 8. source IP (``source_prefix_ranges``), 9. source port.

At each step the chains whose value for that criterion matches the connection most
specifically go on to the next step, and only those: an exact port before "any port",
the longest IP prefix, an exact server name before ``*.example.com`` before ``*.com``
before "any name", an exact transport or ALPN value before "any". A chain that leaves
a field empty is the catch-all of that step, used only when no chain names a value that
matches. There is no back-tracking: once a step chose the more specific chains, a
connection that fails a later step gets no chain at all, even if a less specific chain
would have matched it entirely. Only then does the listener's ``default_filter_chain``
apply.

The module compiles a listener once into a ``FilterChainTable`` (addresses parsed,
names lower-cased, as Envoy does when it loads a listener) and then answers each
connection with a walk over the compiled chains. ``select_filter_chain`` is the
one-shot form used by the simulator. Listener problems Envoy refuses (unparseable
ranges, partial wildcards such as ``www.*.com``, the unimplemented ``address_suffix``
and ``suffix_len``, ``filter_chain_matcher``, two chains with the same matching rules)
are ``ConfigError``s naming the field, for the proxy to NACK.

Pure: protos and strings in, protos out.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from envoy.config.core.v3.address_pb2 import CidrRange
from envoy.config.listener.v3.listener_components_pb2 import FilterChain, FilterChainMatch
from envoy.config.listener.v3.listener_pb2 import Listener

from meshlet.errors import ConfigError, ErrorList, MeshletError

__all__ = [
    "ConnectionFacts",
    "DuplicateMatch",
    "FilterChainTable",
    "compile_filter_chains",
    "find_duplicate_matches",
    "select_filter_chain",
    "validate_filter_chains",
]

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ANY = FilterChainMatch.ConnectionSourceType.ANY
_SAME_IP_OR_LOOPBACK = FilterChainMatch.ConnectionSourceType.SAME_IP_OR_LOOPBACK
_EXTERNAL = FilterChainMatch.ConnectionSourceType.EXTERNAL


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What a listener knows about a new connection when it picks a filter chain."""

    destination_ip: str
    destination_port: int
    source_ip: str
    source_port: int
    transport_protocol: str  # "tls" or "raw_buffer"
    server_name: str = ""
    application_protocols: tuple[str, ...] = ()
    direct_source_ip: str | None = None


@dataclass(frozen=True, slots=True)
class DuplicateMatch:
    """Two chains that some connection would match equally: Envoy refuses the listener."""

    first: str
    second: str
    first_index: int
    second_index: int

    @property
    def message(self) -> str:
        return f"filter chain '{self.second}' has the same matching rules as '{self.first}'"


@dataclass(frozen=True, slots=True)
class _Compiled:
    index: int
    destination_port: int  # 0: any port
    destination_ranges: tuple[_IPNetwork, ...]
    server_names: frozenset[str]  # exact names, and wildcards kept as ".example.com"
    transport_protocol: str
    application_protocols: frozenset[str]
    direct_source_ranges: tuple[_IPNetwork, ...]
    source_type: int
    source_ranges: tuple[_IPNetwork, ...]
    source_ports: frozenset[int]


def _chain_label(chain: FilterChain, index: int) -> str:
    return chain.name or f"#{index}"


def _field(index: int, name: str) -> str:
    return f"filter_chains[{index}].filter_chain_match.{name}"


def _parse_ranges(
    ranges: Iterable[CidrRange], index: int, field_name: str
) -> tuple[_IPNetwork, ...]:
    parsed: list[_IPNetwork] = []
    for i, cidr in enumerate(ranges):
        prefix_len = cidr.prefix_len.value if cidr.HasField("prefix_len") else 0
        try:
            address = ipaddress.ip_address(cidr.address_prefix)
            parsed.append(ipaddress.ip_network(f"{address}/{prefix_len}", strict=False))
        except ValueError:
            raise ConfigError(
                f"invalid CIDR range {cidr.address_prefix!r}/{prefix_len}",
                field=f"{_field(index, field_name)}[{i}]",
            ) from None
    return tuple(parsed)


def _compile_chain(chain: FilterChain, index: int) -> _Compiled:
    match = chain.filter_chain_match
    if match.address_suffix or match.HasField("suffix_len"):
        raise ConfigError(
            f"filter chain '{_chain_label(chain, index)}' contains unimplemented fields",
            field=_field(index, "address_suffix" if match.address_suffix else "suffix_len"),
        )
    names: set[str] = set()
    for i, name in enumerate(match.server_names):
        lowered = name.lower()
        if lowered.startswith("*."):
            names.add(lowered[1:])
        elif "*" in lowered:
            raise ConfigError(
                f"partial wildcards are not supported in server_names: {name!r}",
                field=f"{_field(index, 'server_names')}[{i}]",
            )
        else:
            names.add(lowered)
    return _Compiled(
        index=index,
        destination_port=match.destination_port.value if match.HasField("destination_port") else 0,
        destination_ranges=_parse_ranges(match.prefix_ranges, index, "prefix_ranges"),
        server_names=frozenset(names),
        transport_protocol=match.transport_protocol,
        application_protocols=frozenset(match.application_protocols),
        direct_source_ranges=_parse_ranges(
            match.direct_source_prefix_ranges, index, "direct_source_prefix_ranges"
        ),
        source_type=match.source_type,
        source_ranges=_parse_ranges(match.source_prefix_ranges, index, "source_prefix_ranges"),
        source_ports=frozenset(match.source_ports),
    )


def _parse_address(text: str, what: str) -> _IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an IP address") from None


def _longest_prefix(
    candidates: Sequence[_Compiled],
    ranges_of: Callable[[_Compiled], tuple[_IPNetwork, ...]],
    address: _IPAddress,
) -> list[_Compiled]:
    """The chains whose ranges hold ``address`` with the longest prefix, else the catch-alls.

    A chain with no ranges is the catch-all (``0.0.0.0/0`` and ``::/0``); a range that
    is written out ranks above it even at length 0.
    """
    best = -1
    chosen: list[_Compiled] = []
    for chain in candidates:
        ranges = ranges_of(chain)
        if not ranges:
            rank = 0
        else:
            lengths = [net.prefixlen for net in ranges if address in net]
            if not lengths:
                continue
            rank = max(lengths) + 1
        if rank > best:
            best, chosen = rank, [chain]
        elif rank == best:
            chosen.append(chain)
    return chosen


def _server_name_suffixes(name: str) -> list[str]:
    """``www.example.com`` -> ``[".example.com", ".com"]``, as Envoy tries its wildcards."""
    suffixes = []
    pos = name.find(".", 1)
    while pos != -1 and pos < len(name) - 1:
        suffixes.append(name[pos:])
        pos = name.find(".", pos + 1)
    return suffixes


def _is_same_ip_or_loopback(source: _IPAddress, destination: _IPAddress) -> bool:
    return source.is_loopback or source == destination


class FilterChainTable:
    """A listener's filter chains, compiled for matching; build with ``compile_filter_chains``."""

    __slots__ = ("_chains", "_compiled", "_default")

    def __init__(
        self,
        chains: Sequence[FilterChain],
        compiled: Sequence[_Compiled],
        default: FilterChain | None,
    ) -> None:
        self._chains = tuple(chains)
        self._compiled = tuple(compiled)
        self._default = default

    @property
    def default_filter_chain(self) -> FilterChain | None:
        return self._default

    def select(self, facts: ConnectionFacts) -> FilterChain | None:
        """The chain Envoy would pick for ``facts``, the default chain, or ``None``."""
        index = self.select_index(facts)
        if index is not None:
            return self._chains[index]
        return self._default

    def select_index(self, facts: ConnectionFacts) -> int | None:
        """The index in ``filter_chains`` of the matching chain (the default chain is not one)."""
        destination = _parse_address(facts.destination_ip, "destination_ip")
        source = _parse_address(facts.source_ip, "source_ip")
        direct_source = (
            source
            if facts.direct_source_ip is None
            else _parse_address(facts.direct_source_ip, "direct_source_ip")
        )
        candidates: list[_Compiled] = list(self._compiled)

        # 1. destination port: the exact port, else chains without one.
        port = facts.destination_port
        candidates = [c for c in candidates if c.destination_port == port and port != 0] or [
            c for c in candidates if c.destination_port == 0
        ]
        # 2. destination IP: the longest prefix.
        if candidates:
            candidates = _longest_prefix(candidates, lambda c: c.destination_ranges, destination)
        # 3. server name: exact, then "*.suffix" longest first, then chains without names.
        if candidates:
            server_name = facts.server_name.lower()
            for key in [server_name, *_server_name_suffixes(server_name)] if server_name else []:
                named = [c for c in candidates if key in c.server_names]
                if named:
                    candidates = named
                    break
            else:
                candidates = [c for c in candidates if not c.server_names]
        # 4. transport protocol: exact, else chains without one.
        if candidates:
            transport = facts.transport_protocol
            candidates = [c for c in candidates if c.transport_protocol == transport] or [
                c for c in candidates if not c.transport_protocol
            ]
        # 5. application protocols: the first of the client's list that some chain names.
        if candidates:
            for protocol in facts.application_protocols:
                named = [c for c in candidates if protocol in c.application_protocols]
                if named:
                    candidates = named
                    break
            else:
                candidates = [c for c in candidates if not c.application_protocols]
        # 6. directly connected source IP: the longest prefix.
        if candidates:
            candidates = _longest_prefix(
                candidates, lambda c: c.direct_source_ranges, direct_source
            )
        # 7. source type: local or external if a chain asks for it, else ANY.
        if candidates:
            candidates = self._narrow_source_type(candidates, source, destination)
        # 8. source IP: the longest prefix.
        if candidates:
            candidates = _longest_prefix(candidates, lambda c: c.source_ranges, source)
        # 9. source port: the exact port, else chains without ports.
        if candidates:
            candidates = [c for c in candidates if facts.source_port in c.source_ports] or [
                c for c in candidates if not c.source_ports
            ]
        if not candidates:
            return None
        # More than one left means duplicate matching rules, which Envoy refuses at load
        # time (see validate_filter_chains); the first in listener order is the answer.
        return candidates[0].index

    @staticmethod
    def _narrow_source_type(
        candidates: list[_Compiled], source: _IPAddress, destination: _IPAddress
    ) -> list[_Compiled]:
        local = [c for c in candidates if c.source_type == _SAME_IP_OR_LOOPBACK]
        external = [c for c in candidates if c.source_type == _EXTERNAL]
        if local or external:
            if _is_same_ip_or_loopback(source, destination):
                if local:
                    return local
            elif external:
                return external
        return [c for c in candidates if c.source_type == _ANY]


def compile_filter_chains(listener: Listener) -> FilterChainTable:
    """Compile ``listener``'s chains; ``ConfigError`` names the first field Envoy refuses."""
    if listener.HasField("filter_chain_matcher"):
        raise ConfigError(
            "filter_chain_matcher is not supported; use filter_chain_match on each chain",
            field="filter_chain_matcher",
        )
    compiled = [_compile_chain(chain, i) for i, chain in enumerate(listener.filter_chains)]
    default = listener.default_filter_chain if listener.HasField("default_filter_chain") else None
    return FilterChainTable(listener.filter_chains, compiled, default)


def select_filter_chain(listener: Listener, facts: ConnectionFacts) -> FilterChain | None:
    """The filter chain Envoy picks for a connection, or ``None`` (the connection is reset).

    Raises ``ConfigError`` for a listener Envoy would refuse to load, and ``ValueError``
    when an address in ``facts`` is not an IP address.
    """
    return compile_filter_chains(listener).select(facts)


def _match_keys(chain: _Compiled) -> Iterable[tuple[object, ...]]:
    """Every point of the match space the chain claims, as Envoy lays out its match tree."""
    return itertools.product(
        [chain.destination_port],
        [str(net) for net in chain.destination_ranges] or [""],
        sorted(chain.server_names) or [""],
        [chain.transport_protocol],
        sorted(chain.application_protocols) or [""],
        [str(net) for net in chain.direct_source_ranges] or [""],
        [chain.source_type],
        [str(net) for net in chain.source_ranges] or [""],
        sorted(chain.source_ports) or [0],
    )


def find_duplicate_matches(listener: Listener) -> tuple[DuplicateMatch, ...]:
    """Pairs of chains whose matching rules overlap exactly (Envoy refuses such a listener).

    Two chains clash when some combination of their values (one port, one range, one
    server name, ...) is the same, ranges compared after masking as Envoy does. Each
    later chain is reported once, against the first chain it clashes with.
    """
    compiled = compile_filter_chains(listener)._compiled
    owner: dict[tuple[object, ...], int] = {}
    found: list[DuplicateMatch] = []
    chains = listener.filter_chains
    for chain in compiled:
        clash: int | None = None
        for key in _match_keys(chain):
            first = owner.setdefault(key, chain.index)
            if first != chain.index and clash is None:
                clash = first
        if clash is not None:
            found.append(
                DuplicateMatch(
                    first=_chain_label(chains[clash], clash),
                    second=_chain_label(chains[chain.index], chain.index),
                    first_index=clash,
                    second_index=chain.index,
                )
            )
    return tuple(found)


def validate_filter_chains(listener: Listener) -> None:
    """Raise what Envoy would refuse in ``listener``'s filter chains, every problem at once."""
    errors: list[MeshletError] = []
    if listener.HasField("filter_chain_matcher"):
        errors.append(
            ConfigError(
                "filter_chain_matcher is not supported; use filter_chain_match on each chain",
                field="filter_chain_matcher",
            )
        )
    else:
        for i, chain in enumerate(listener.filter_chains):
            try:
                _compile_chain(chain, i)
            except ConfigError as exc:
                errors.append(exc)
        if not errors:
            errors.extend(
                ConfigError(dup.message, field=f"filter_chains[{dup.second_index}]")
                for dup in find_duplicate_matches(listener)
            )
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorList(errors)
