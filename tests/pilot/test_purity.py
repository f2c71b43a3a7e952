"""The pilot package is pure: no sockets, files, event loop, clock or environment."""

from __future__ import annotations

from tests.purity import impurities, package_modules


def test_pilot_modules_import_nothing_impure() -> None:
    modules = package_modules("meshlet.pilot")
    assert len(modules) >= 8
    assert [problem for module in modules for problem in impurities(module)] == []
