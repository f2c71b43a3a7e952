from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from meshlet.cli import _cluster
from meshlet.cli.main import main
from tests.cli.fake_cluster import FakeCluster

NOW = datetime(2022, 10, 24, 9, 14, 0, tzinfo=UTC)


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    fake = FakeCluster()
    monkeypatch.setattr(_cluster, "open_client", lambda: fake)
    monkeypatch.setattr(_cluster, "now", lambda: NOW)
    return fake


@pytest.fixture
def meshlet(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run ``meshlet ARGS…`` (with ``stdin`` text) and return its exit code and output."""

    def run(*argv: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
