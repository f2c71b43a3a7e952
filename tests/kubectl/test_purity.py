"""The kubectl package is pure: no sockets, files, event loop, clock or environment."""

from __future__ import annotations

from tests.purity import impurities, package_modules


def test_kubectl_modules_import_nothing_impure() -> None:
    modules = package_modules("meshlet.kubectl")
    assert len(modules) >= 9
    assert [problem for module in modules for problem in impurities(module)] == []
