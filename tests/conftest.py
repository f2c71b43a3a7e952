from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# The suite's property tests run the same examples every time, so that a run is
# repeatable and main stays green; longer, randomised searches are `bench/fuzz.sh`'s
# job. `HYPOTHESIS_PROFILE=explore` searches anew on each run.
settings.register_profile("suite", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


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
