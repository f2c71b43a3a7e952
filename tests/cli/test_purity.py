"""The pure modules of the verbs import no I/O and read no clock."""

from __future__ import annotations

from tests.purity import impurities, package_modules


def test_pure_modules_import_nothing_impure() -> None:
    modules = [*package_modules("meshlet.istioctl"), "meshlet.cli.describers"]
    assert len(modules) >= 4
    assert [problem for module in modules for problem in impurities(module)] == []
