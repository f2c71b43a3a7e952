"""Running the machine's tools (``ip``, ``iptables-restore``, ``nsenter``) with a time
bound, turning a failure into a ``NodeRuntimeError`` that says what failed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from meshlet.runtime.errors import NodeRuntimeError

__all__ = ["run", "which"]

COMMAND_TIMEOUT = 20.0


def which(tool: str) -> str | None:
    """The path of ``tool``, looking in the sbin directories too (root's tools)."""
    return shutil.which(tool) or shutil.which(
        tool, path="/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
    )


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion; raise ``NodeRuntimeError`` with its stderr when it
    fails and ``check`` is set."""
    tool = which(argv[0])
    if tool is None:
        raise NodeRuntimeError(f"{argv[0]} is not installed (needed by the local cluster)")
    try:
        done = subprocess.run(
            [tool, *argv[1:]],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NodeRuntimeError(f"{' '.join(argv)} did not finish within {timeout:g}s") from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().replace("\n", "; ")
        raise NodeRuntimeError(f"{' '.join(argv)} failed (exit {done.returncode}): {detail}")
    return done
