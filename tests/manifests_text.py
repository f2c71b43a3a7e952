"""The reference scenario's manifests, read from the repository's own example files."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sidecar-tls-termination"


def scenario_sidecar() -> str:
    """The Sidecar of the scenario's step 6, as written there."""
    return (EXAMPLE / "sidecar.yaml").read_text()
