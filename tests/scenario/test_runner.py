"""The runner runs commands as a user's shell would: output echoed as it comes and kept,
exports carried to the next command, exit codes kept, a hung command killed."""

from __future__ import annotations

import io
from pathlib import Path

from meshlet.scenario.runner import ScenarioRunner, process_tree_pss_kib, step_verdicts
from meshlet.scenario.steps import Command, Compare, Step


def runner(tmp_path: Path, **kwargs: object) -> tuple[ScenarioRunner, io.StringIO]:
    out = io.StringIO()
    return ScenarioRunner(tmp_path, out=out, env={"PATH": "/usr/bin:/bin"}, **kwargs), out  # type: ignore[arg-type]


def test_output_is_echoed_and_kept_with_stderr_in_order(tmp_path: Path) -> None:
    run, out = runner(tmp_path)
    outcome = run.run(Command("echo one; echo two >&2; echo three; exit 7"))
    assert outcome.output == "one\ntwo\nthree\n"
    assert outcome.exit_code == 7
    assert out.getvalue() == "$ echo one; echo two >&2; echo three; exit 7\none\ntwo\nthree\n"


def test_exports_carry_over_and_heredocs_work(tmp_path: Path) -> None:
    run, _ = runner(tmp_path)
    run.run(Command("export CLIENT=$(echo sleep-1)"))
    done = run.run(Command("cat <<EOF\nclient ${CLIENT}\nEOF"))
    assert done.output == "client sleep-1\n"
    assert run.env["CLIENT"] == "sleep-1"
    assert run.run(Command("pwd")).output.strip() == str(tmp_path)


def test_install_flags_are_added_to_install_only(tmp_path: Path) -> None:
    run, _ = runner(tmp_path, install_flags=("--node-prefix", "mltabc"))
    assert run.command_text(Command("meshlet install --set a=b")) == (
        "meshlet install --set a=b --node-prefix mltabc"
    )
    assert run.command_text(Command("meshlet get pods")) == "meshlet get pods"


def test_a_command_past_its_timeout_is_killed(tmp_path: Path) -> None:
    run, _ = runner(tmp_path, timeout=0.5)
    done = run.run(Command("echo start; sleep 30 & sleep 30"))
    assert done.seconds < 5
    assert "killed after 0.5s" in done.output
    assert done.exit_code != 0


def test_step_verdicts_name_the_failing_command(tmp_path: Path) -> None:
    run, _ = runner(tmp_path)
    step = Step(
        3,
        "Two commands and an output",
        (
            Command("true"),
            Command("echo nope; false"),
            Command("echo hello", "hello", Compare.LINES, check="greeting"),
        ),
    )
    run.run_step(step)
    verdicts = step_verdicts(step, run.outcomes)
    assert [(v.check, v.passed, v.reason) for v in verdicts] == [
        ("step 3", False, "`echo nope; false` exited 1: nope"),
        ("greeting", True, "every line matches (date and ms masked)"),
    ]


def test_pss_of_a_process_tree(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, ppid, pss in ((10, 1, 1000), (11, 10, 200), (12, 10, 300), (13, 1, 5000)):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "stat").write_text(f"{pid} (py thon) S {ppid} 0 0")
        (proc / str(pid) / "smaps_rollup").write_text(f"Rss: 9 kB\nPss: {pss} kB\n")
    assert process_tree_pss_kib(10, proc) == (1500, 3)
