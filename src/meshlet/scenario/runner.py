"""Running the scenario's commands for a user: the shell around ``steps`` and ``compare``.

Theory of operation
-------------------
Each command runs as the user would type it, with ``bash -c`` in a scratch directory,
``meshlet`` on the ``PATH`` being this installation's console script. Its output
(stdout and stderr together, as a terminal shows them) is echoed as it arrives and
kept for the comparison. What a command exports (``export INTERNAL_CLIENT=$(…)``)
carries over to the next ones: after the command, ``env -0`` writes the shell's
environment to a pipe the runner reads. A command that outlives its timeout is killed
with its process group (the runner started it in a session of its own).

The scenario's ``proxy-config secret`` names the pod of the run it was written from;
the runner puts this run's pod name in its place (``Command.pod_name``) and shows the
command as it ran.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from meshlet.scenario.compare import Verdict, compare_output
from meshlet.scenario.steps import Command, Compare, Step

__all__ = ["Outcome", "ScenarioRunner", "process_tree_pss_kib", "step_verdicts"]

COMMAND_TIMEOUT = 120.0
_KEEP_OUT = {"_", "SHLVL", "PWD", "OLDPWD"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one command did: the text that ran, its output, exit code and duration."""

    command: Command
    ran: str
    output: str
    exit_code: int
    started: float  # time.monotonic() when it started
    seconds: float

    @property
    def verdict(self) -> Verdict:
        return compare_output(self.command, self.output, self.exit_code)


@dataclass
class ScenarioRunner:
    """Runs commands in ``workdir``, echoing to ``out``; ``install_flags`` are added to
    ``meshlet install`` (a node prefix and address ranges of its own, for tests)."""

    workdir: Path
    out: TextIO = field(default_factory=lambda: sys.stdout)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    install_flags: Sequence[str] = ()
    timeout: float = COMMAND_TIMEOUT
    color: bool = False
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        bin_dir = str(Path(sys.executable).parent)
        path = self.env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        if path.split(":")[0] != bin_dir:
            self.env["PATH"] = f"{bin_dir}:{path}"

    # -- output ------------------------------------------------------------------

    def _style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def say(self, text: str = "", code: str = "") -> None:
        self.out.write((self._style(text, code) if code else text) + "\n")
        self.out.flush()

    def heading(self, step: Step) -> None:
        self.say()
        self.say(f"== {step.number}. {step.title}", "1")

    # -- running -----------------------------------------------------------------

    def command_text(self, command: Command) -> str:
        text = command.text
        if self.install_flags and text.startswith("meshlet install"):
            text = " ".join([text, *self.install_flags])
        if command.pod_name is not None:
            literal, namespace, selector = command.pod_name
            found = self.capture(
                f"meshlet -n {namespace} get pod -l {selector} -o jsonpath={{.items..metadata.name}}"
            )
            if found:
                text = text.replace(literal, found.split()[0])
        return text

    def capture(self, text: str) -> str:
        """Run a helper command quietly; its stdout (empty when it fails)."""
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    def run(self, command: Command, *, show: bool = True) -> Outcome:
        text = self.command_text(command)
        if show:
            for index, line in enumerate(text.splitlines()):
                self.say(("$ " if index == 0 else "") + line, "36" if index == 0 else "")
        started = time.monotonic()
        output, exit_code = self._execute(text, echo=show)
        outcome = Outcome(command, text, output, exit_code, started, time.monotonic() - started)
        self.outcomes.append(outcome)
        return outcome

    def run_step(self, step: Step, *, after: Callable[[Outcome], None] | None = None) -> None:
        self.heading(step)
        for command in step.commands:
            outcome = self.run(command)
            if after is not None:
                after(outcome)

    def _execute(self, text: str, *, echo: bool) -> tuple[str, int]:
        read_env, write_env = os.pipe()
        script = f'{text}\n__meshlet_rc=$?\nenv -0 >&{write_env}\nexit "$__meshlet_rc"\n'
        try:
            process = subprocess.Popen(
                ["bash", "-c", script],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(write_env,),
                start_new_session=True,
            )
        finally:
            os.close(write_env)
        chunks: list[bytes] = []
        exported: list[bytes] = []
        deadline = time.monotonic() + self.timeout
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, chunks)
            selector.register(read_env, selectors.EVENT_READ, exported)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    chunks.append(f"\n(killed after {self.timeout:g}s)\n".encode())
                    break
                for key, _ in selector.select(min(remaining, 1.0)):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                        continue
                    key.data.append(data)
                    if key.data is chunks and echo:
                        self.out.write(data.decode(errors="replace"))
                        self.out.flush()
        os.close(read_env)
        process.stdout.close()
        exit_code = process.wait()
        output = b"".join(chunks).decode(errors="replace")
        if echo and output and not output.endswith("\n"):
            self.out.write("\n")
        self._keep_exports(b"".join(exported))
        return output, exit_code

    def _keep_exports(self, data: bytes) -> None:
        for entry in data.split(b"\0"):
            name, sep, value = entry.decode(errors="replace").partition("=")
            if sep and name not in _KEEP_OUT:
                self.env[name] = value


def step_verdicts(step: Step, outcomes: Sequence[Outcome]) -> list[Verdict]:
    """The verdicts of one step: one per compared output, and one for the commands that
    only have to succeed (``step N``), named after the first that did not."""
    mine = [o for o in outcomes if o.command in step.commands]
    verdicts: list[Verdict] = []
    plain = [o for o in mine if o.command.compare is Compare.NONE]
    failed = [o for o in plain if o.verdict.passed is False]
    if plain:
        name = f"step {step.number}"
        if failed:
            first = failed[0]
            line = first.ran.splitlines()[0]
            verdicts.append(
                Verdict(name, False, f"`{line}` exited {first.exit_code}: {_last_line(first)}")
            )
        else:
            count = f"{len(plain)} commands" if len(plain) > 1 else "its command"
            verdicts.append(Verdict(name, True, f"{count} succeeded ({step.title})"))
    verdicts.extend(o.verdict for o in mine if o.command.compare is not Compare.NONE)
    if len(mine) < len(step.commands):
        verdicts.append(
            Verdict(f"step {step.number}", False, f"{len(step.commands) - len(mine)} not run")
        )
    return verdicts


def _last_line(outcome: Outcome) -> str:
    lines = [line for line in outcome.output.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def process_tree_pss_kib(pid: int, proc: Path = Path("/proc")) -> tuple[int, int]:
    """The proportional set size (KiB) of ``pid`` and all its descendants, and how many
    processes that is (read from ``smaps_rollup``)."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total = count = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        with contextlib.suppress(OSError):
            for line in (proc / str(current) / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    count += 1
    return total, count


def environment_for(home: str | None, base: Mapping[str, str]) -> dict[str, str]:
    """The commands' environment: ``base`` with ``MESHLET_HOME`` set when given."""
    env = dict(base)
    if home is not None:
        env["MESHLET_HOME"] = home
    return env
