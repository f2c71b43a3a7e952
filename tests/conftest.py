from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def api_schemas_dir() -> Path | None:
    """The published API schemas: test data kept in ``shared/data`` beside the checkout
    (or an ancestor of it), never in it."""
    named = os.environ.get("MESHLET_API_SCHEMAS")
    candidates = [Path(named)] if named else []
    candidates.extend(folder / "shared" / "data" for folder in REPO.parents)
    for candidate in candidates:
        if (candidate / "istio-crds.yaml").exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def api_schemas() -> Path:
    found = api_schemas_dir()
    if found is None:
        pytest.skip("the published API schemas are not beside this checkout")
    return found
