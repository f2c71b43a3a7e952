"""The pure modules of the runtime import nothing that acts on the machine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.purity import imports_of, impurities

PURE = [
    "meshlet.runtime.config",
    "meshlet.runtime.ipam",
    "meshlet.runtime.services",
    "meshlet.runtime.capture",
    "meshlet.runtime.dnsmsg",
    "meshlet.runtime.podfiles",
    "meshlet.runtime.containerspec",
]


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports(module: str) -> None:
    assert impurities(module) == []
    for name in imports_of(module):
        if name.startswith("meshlet.runtime."):
            assert name in PURE or name == "meshlet.runtime.errors", name


def test_the_entry_program_loads_neither_grpc_nor_asyncio() -> None:
    probe = (
        "import sys, meshlet.runtime.enter; "
        "print(sorted(m for m in ('grpc', 'asyncio', 'yaml') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
