"""``meshlet install`` / ``uninstall``: what they refuse before touching the machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshlet.cli import install
from meshlet.cli.main import main
from meshlet.errors import ExitCode


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHLET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_without_root_one_plain_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    monkeypatch.setattr(install.os, "geteuid", lambda: 1000)
    assert main(["install"]) == ExitCode.UNAVAILABLE
    err = capsys.readouterr().err
    assert err == (
        "error: meshlet install needs root (network namespaces, iptables and mounts); run it with sudo\n"
    )
    assert main(["uninstall", "--purge", "-y"]) == ExitCode.UNAVAILABLE
    assert "meshlet uninstall needs root" in capsys.readouterr().err
    assert not home.exists()


def test_a_bad_set_flag_is_refused_before_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    monkeypatch.setattr(install.os, "geteuid", lambda: 0)
    assert main(["install", "--set", "values.unknown=1"]) == ExitCode.USAGE
    assert 'meshlet does not know the setting "values.unknown"' in capsys.readouterr().err
    assert not home.exists()


def test_uninstall_needs_purge(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["uninstall"]) == ExitCode.USAGE
    assert "needs --purge" in capsys.readouterr().err


def test_uninstall_without_yes_and_without_a_terminal_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    monkeypatch.setattr(install.os, "geteuid", lambda: 0)
    home.mkdir()
    (home / "marker").write_text("kept")
    monkeypatch.setattr(install.sys.stdin, "isatty", lambda: False, raising=False)
    assert main(["uninstall", "--purge"]) == ExitCode.USAGE
    assert "add -y" in capsys.readouterr().err
    assert (home / "marker").read_text() == "kept"


def test_uninstall_of_nothing_is_fine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(install.os, "geteuid", lambda: 0)
    assert main(["uninstall", "--purge", "-y"]) == 0
    assert capsys.readouterr().out == "✔ Uninstall complete\n"
