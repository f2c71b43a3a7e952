"""meshlet's main job: the reference scenario run for the user, with a verdict per check.

``python -m meshlet.scenario`` (what ``scripts/demo.sh`` runs) installs the local
cluster and runs steps 1 to 10 of the scenario through the real ``meshlet`` command in
a scratch directory, showing each command and its output as it goes; before listing
the pods it waits for them with ``meshlet wait --for=condition=Ready``, as a user
would. It ends with a PASS/FAIL verdict per check (``compare``) and what it measured
(install, first apply to all pods Ready, the whole run, each sidecar's memory), and
leaves the cluster running. ``--cleanup`` runs step 11 and checks that nothing is left.

The scratch directory (default ``/tmp/meshlet-demo``) holds the certificates of step 3,
a copy of the ``sleep`` sample and a marker naming the cluster the demo installed, so
that a second run, or ``--cleanup``, knows the cluster is the demo's own. A cluster
that the demo did not install is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from meshlet.cluster.home import ClusterHome
from meshlet.scenario.compare import Verdict
from meshlet.scenario.runner import ScenarioRunner, process_tree_pss_kib, step_verdicts
from meshlet.scenario.steps import CLEANUP, SCENARIO, Step

__all__ = ["Measurements", "main", "run_cleanup", "run_scenario", "sidecar_memory"]

DEFAULT_DIR = Path("/tmp/meshlet-demo")
MARKER = ".meshlet-demo"
SLEEP_SAMPLE = Path("samples/sleep/sleep.yaml")


class Measurements(dict[str, float]):
    """Seconds measured during a run: ``install``, ``pods_ready``, ``total``."""


def _repo_samples() -> Path:
    return Path(__file__).resolve().parents[3] / "samples"


def prepare_workdir(workdir: Path, samples: Path, home: Path) -> None:
    """A fresh scratch directory with the sleep sample where the scenario expects it."""
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / SLEEP_SAMPLE.parent).mkdir(parents=True)
    shutil.copyfile(samples / "sleep" / "sleep.yaml", workdir / SLEEP_SAMPLE)
    (workdir / MARKER).write_text(f"{home}\n")


def run_scenario(
    runner: ScenarioRunner, steps: tuple[Step, ...] = SCENARIO
) -> tuple[list[Verdict], Measurements]:
    """Run ``steps``; their verdicts and the times measured."""
    measured = Measurements()
    started = time.monotonic()
    for step in steps:
        runner.run_step(step)
    ran = runner.outcomes
    for outcome in ran:
        if outcome.command.text.startswith("meshlet install"):
            measured["install"] = outcome.seconds
    # from the first apply of a workload (httpbin, step 5) to the end of the last wait
    workloads = [o for o in ran if o.command in _step(steps, 5).commands]
    waits = [o for o in ran if o.command.extra]
    if workloads and waits:
        measured["pods_ready"] = waits[-1].started + waits[-1].seconds - workloads[0].started
    measured["total"] = time.monotonic() - started
    verdicts = [v for step in steps for v in step_verdicts(step, runner.outcomes)]
    return verdicts, measured


def _step(steps: tuple[Step, ...], number: int) -> Step:
    return next((s for s in steps if s.number == number), Step(number, "", ()))


def sidecar_memory(home: Path) -> list[tuple[str, int, int]]:
    """Each running sidecar's PSS in KiB (agent and workers) and its process count."""
    from meshlet.cluster.client import ClusterClient
    from meshlet.errors import MeshletError

    client = ClusterClient(home)
    found = []
    with contextlib.suppress(MeshletError, OSError):
        for pod in client.get("/Pod", namespace=None):
            meta = pod.get("metadata") or {}
            names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
            if "istio-proxy" not in names:
                continue
            with contextlib.suppress(MeshletError):
                pid = client.locate(meta["namespace"], meta["name"], "istio-proxy")["pid"]
                pss, count = process_tree_pss_kib(int(pid))
                found.append((f"{meta['name']}.{meta['namespace']}", pss, count))
    return sorted(found)


def print_verdicts(runner: ScenarioRunner, verdicts: list[Verdict]) -> None:
    runner.say()
    runner.say("== Verdicts", "1")
    width = max(len(v.check) for v in verdicts)
    for verdict in verdicts:
        label = runner._style(verdict.label, "32" if verdict.passed else "31;1")
        runner.say(f"{label}  {verdict.check.ljust(width)}  {verdict.reason}")
    passed = sum(v.passed for v in verdicts)
    runner.say(f"{passed} of {len(verdicts)} checks passed")


def print_measurements(runner: ScenarioRunner, measured: Measurements, home: Path) -> None:
    runner.say()
    runner.say("== Measured", "1")
    labels = (
        ("install", "meshlet install"),
        ("pods_ready", "first apply to all pods Ready"),
        ("total", "the whole run"),
    )
    for key, label in labels:
        if key in measured:
            runner.say(f"{label}: {measured[key]:.1f}s")
    for pod, pss, count in sidecar_memory(home):
        runner.say(f"sidecar {pod}: {pss / 1024:.1f} MiB PSS ({count} processes)")


def _home() -> Path:
    return ClusterHome.from_environment(os.environ).root


def _owned_by_demo(workdir: Path, home: Path) -> bool:
    marker = workdir / MARKER
    with contextlib.suppress(OSError):
        return marker.read_text().strip() == str(home)
    return False


def run_cleanup(runner: ScenarioRunner, home: Path) -> list[Verdict]:
    """Step 11, then a check that the cluster left nothing behind."""
    prefix = ""
    with contextlib.suppress(OSError, ValueError, KeyError):
        prefix = json.loads((home / "node.json").read_text())["prefix"]
    runner.run_step(CLEANUP)
    verdicts = step_verdicts(CLEANUP, runner.outcomes)
    left = []
    if home.exists():
        left.append(str(home))
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and str(home).encode() in (entry / "cmdline").read_bytes():
                left.append(f"process {entry.name}")
    if prefix:
        shown = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=False
        ).stdout
        left.extend(line.split()[0] for line in shown.splitlines() if line.startswith(prefix))
    verdicts.append(
        Verdict(
            "nothing left",
            not left,
            "no state directory, pod namespace or process of meshlet"
            if not left
            else f"left: {', '.join(left)}",
        )
    )
    return verdicts


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meshlet.scenario",
        description="Run the reference scenario (TLS termination on the sidecar) end to end.",
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the scratch directory")
    parser.add_argument("--samples", type=Path, default=None, help="meshlet's samples/")
    parser.add_argument("--cleanup", action="store_true", help="run step 11: remove it all")
    args = parser.parse_args(argv)
    stream = out or sys.stdout
    runner = ScenarioRunner(args.dir, out=stream, color=stream.isatty())
    if os.geteuid() != 0:
        runner.say("meshlet's demo installs a local cluster and needs root: run it with sudo")
        return 3
    home = _home()
    if args.cleanup:
        if not _owned_by_demo(args.dir, home):
            runner.say(
                f"no cluster of the demo in {args.dir}; "
                "to remove any meshlet cluster run: meshlet uninstall --purge -y"
            )
            return 1
        verdicts = run_cleanup(runner, home)
        print_verdicts(runner, verdicts)
        if all(v.passed for v in verdicts):
            shutil.rmtree(args.dir, ignore_errors=True)
        return 0 if all(v.passed for v in verdicts) else 1
    if home.exists():
        if not _owned_by_demo(args.dir, home):
            runner.say(
                f"meshlet is already installed in {home}, not by this demo. Remove it with "
                "`meshlet uninstall --purge -y`, or set MESHLET_HOME to another directory."
            )
            return 1
        runner.say("A cluster from an earlier run of the demo is still there: step 11 first.")
        run_cleanup(runner, home)
    samples = args.samples or _repo_samples()
    if not (samples / "sleep" / "sleep.yaml").is_file():
        runner.say(f"the sleep sample is not in {samples}: pass --samples DIR")
        return 2
    prepare_workdir(args.dir, samples, home)
    runner.say(f"Running the reference scenario in {args.dir} (cluster state in {home})")
    verdicts, measured = run_scenario(runner)
    print_verdicts(runner, verdicts)
    print_measurements(runner, measured, home)
    runner.say()
    runner.say(
        "The cluster keeps running: try `meshlet get pods -A`, "
        "`meshlet proxy-config listener <pod>.test` or `meshlet analyze -A`."
    )
    runner.say(f"To remove it all (step 11): scripts/demo.sh --cleanup  (in {args.dir})")
    return 0 if all(v.passed for v in verdicts) else 1
