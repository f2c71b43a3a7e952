"""The protocol cores are pure: they import nothing that reaches sockets, files or clocks."""

from __future__ import annotations

import pytest

from tests.purity import FORBIDDEN, impurities

PURE_MODULES = [
    "meshlet.proxy.client_hello",
    "meshlet.proxy.http_headers",
    "meshlet.proxy.http1_head",
    "meshlet.envoy.filter_chain",
]


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports(module: str) -> None:
    # Bytes in, decisions out: not even a date or an identifier to make up.
    assert impurities(module, FORBIDDEN | {"datetime", "uuid"}) == []
