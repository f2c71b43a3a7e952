"""Splicing encoded elements into a message gives the message's own encoding."""

from __future__ import annotations

import pytest
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2

from meshlet.pilot import _xds
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.routes import build_routes
from tests.pilot.scenario import scenario_snapshot, sleep_proxy


def _spliced(message: listener_pb2.Listener | route_pb2.RouteConfiguration, field: str) -> bytes:
    frame = type(message)()
    frame.CopyFrom(message)
    frame.ClearField(field)
    number = message.DESCRIPTOR.fields_by_name[field].number
    records = [
        _xds.encode_embedded(number, item.SerializeToString(deterministic=True))
        for item in getattr(message, field)
    ]
    return _xds.splice_repeated(frame, field, records)


def test_spliced_listeners_and_routes_are_their_encoding() -> None:
    snapshot = scenario_snapshot()
    proxy = sleep_proxy(snapshot)
    for listener in build_listeners(proxy, snapshot):
        assert len(listener.filter_chains) > 1
        expected = listener.SerializeToString(deterministic=True)
        assert _spliced(listener, "filter_chains") == expected
    for config in build_routes(proxy, snapshot):
        expected = config.SerializeToString(deterministic=True)
        assert _spliced(config, "virtual_hosts") == expected


def test_long_elements_get_multi_byte_lengths() -> None:
    host = route_components_pb2.VirtualHost(name="h" * 300, domains=["d" * 20000])
    config = route_pb2.RouteConfiguration(name="80", virtual_hosts=[host, host])
    assert _spliced(config, "virtual_hosts") == config.SerializeToString(deterministic=True)


def test_a_frame_that_has_the_field_is_refused() -> None:
    config = route_pb2.RouteConfiguration(
        name="80", virtual_hosts=[route_components_pb2.VirtualHost()]
    )
    with pytest.raises(ValueError, match="virtual_hosts"):
        _xds.splice_repeated(config, "virtual_hosts", [])
