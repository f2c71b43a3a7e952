from __future__ import annotations

import sys
from pathlib import Path

import pytest

import meshlet
from meshlet.runtime import container

CHECKOUT = Path(meshlet.__file__).resolve().parents[2]


def _expected(*paths: str) -> list[str]:
    """What is mounted back: the given paths plus the checkout when it lives under /tmp."""
    roots = sorted({*paths, *([str(CHECKOUT)] if str(CHECKOUT).startswith("/tmp/") else [])})
    return [r for r in roots if not any(r.startswith(o + "/") for o in roots)]


def _mounts(tmp_path: Path) -> list[container.Mount]:
    resolv, hosts = tmp_path / "resolv.conf", tmp_path / "hosts"
    resolv.write_text("")
    hosts.write_text("")
    _, mounts = container.container_mounts(tmp_path / "c", resolv_conf=resolv, hosts=hosts)
    return mounts


def test_a_virtual_environment_under_tmp_is_mounted_back_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "prefix", "/tmp/elsewhere/.venv")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    kept = [m for m in _mounts(tmp_path) if m.source == m.target]
    assert [m.target for m in kept] == _expected("/tmp/elsewhere/.venv")
    assert all(m.read_only for m in kept)
    # the mount point exists inside the container's own /tmp, not on the host's
    assert (tmp_path / "c" / "tmp" / "elsewhere" / ".venv").is_dir()


def test_nothing_outside_tmp_is_mounted_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "prefix", "/opt/venv")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    kept = [m.target for m in _mounts(tmp_path) if m.source == m.target]
    assert kept == _expected()
