"""Run one fuzz target under atheris: ``python fuzz.py TARGET [libFuzzer flags]``.

bench/fuzz.sh installs atheris in a venv of its own and runs every target for a bounded
time (``-max_total_time``).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["meshlet"]):
    from fuzz_targets import TARGETS


def main() -> None:
    name = sys.argv.pop(1)
    target = TARGETS[name]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
