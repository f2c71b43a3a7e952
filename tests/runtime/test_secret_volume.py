"""Secret and ConfigMap volumes in kubelet's layout (plain files: no root needed)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from meshlet.runtime.container import write_secret_volume

NOW = datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)


def layout(directory):
    return sorted(
        (entry.name, os.readlink(entry) if entry.is_symlink() else None)
        for entry in directory.iterdir()
    )


def test_kubelet_layout(tmp_path):
    volume = tmp_path / "tls"
    assert write_secret_volume(volume, {"tls.crt": b"CERT1", "tls.key": b"KEY1"}, now=NOW)
    entries = dict(layout(volume))
    data_target = entries["..data"]
    assert data_target.startswith("..2024_05_01_12_30_45.")
    assert entries["tls.crt"] == "..data/tls.crt"
    assert entries["tls.key"] == "..data/tls.key"
    assert entries[data_target] is None  # the timestamped directory itself
    assert sorted(entries) == sorted(["..data", data_target, "tls.crt", "tls.key"])
    assert (volume / "tls.crt").read_bytes() == b"CERT1"
    assert oct((volume / data_target / "tls.key").stat().st_mode & 0o777) == "0o644"


def test_unchanged_content_touches_nothing(tmp_path):
    volume = tmp_path / "v"
    write_secret_volume(volume, {"a": b"1"}, now=NOW)
    before = layout(volume)
    assert not write_secret_volume(volume, {"a": b"1"})
    assert layout(volume) == before


def test_an_update_swaps_data_and_removes_the_old(tmp_path):
    volume = tmp_path / "v"
    write_secret_volume(volume, {"ca.crt": b"OLD", "gone": b"x"}, now=NOW)
    old_target = os.readlink(volume / "..data")
    # a reader holding the directory through the stable path keeps working
    assert write_secret_volume(volume, {"ca.crt": b"NEW", "added": b"y"}, now=NOW)
    new_target = os.readlink(volume / "..data")
    assert new_target != old_target
    assert not (volume / old_target).exists()
    assert (volume / "ca.crt").read_bytes() == b"NEW"
    assert (volume / "added").read_bytes() == b"y"
    assert not (volume / "gone").is_symlink()
    assert not (volume / "..data_tmp").exists()


def test_nested_paths_and_bad_keys(tmp_path):
    volume = tmp_path / "v"
    write_secret_volume(volume, {"sub/file.txt": b"z"})
    assert os.readlink(volume / "sub") == "..data/sub"
    assert (volume / "sub" / "file.txt").read_bytes() == b"z"
    for bad in ("../escape", "/abs", "..hidden", "a/../b", ""):
        with pytest.raises(ValueError, match="relative path"):
            write_secret_volume(volume, {bad: b"x"})
