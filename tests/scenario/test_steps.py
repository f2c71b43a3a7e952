"""The steps as data are the scenario's, command for command and output for output
(checked against the scenario's own text where it is beside the checkout), and the
pure modules stay pure."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import meshlet.scenario.compare
import meshlet.scenario.steps
from meshlet.scenario.steps import CLEANUP, SCENARIO, Command, Compare

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def split_commands(block: str) -> list[str]:
    """A shell block as a user pastes it: one command per line, heredocs and ``\\``
    continuations kept whole."""
    commands: list[str] = []
    lines = block.rstrip("\n").splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        current = [lines[index]]
        if "<<EOF" in lines[index]:
            while current[-1] != "EOF":
                index += 1
                current.append(lines[index])
        while current[-1].endswith("\\"):
            index += 1
            current.append(lines[index])
        commands.append("\n".join(current))
        index += 1
    return commands


def scenario_blocks(text: str) -> list[tuple[str, str | None]]:
    """Every command of the document, with the output block that follows its block."""
    found: list[tuple[str, str | None]] = []
    for match in FENCE.finditer(text):
        language, body = match.group(1), match.group(2)
        if language == "bash":
            found.extend((command, None) for command in split_commands(body))
        elif found:
            command, _ = found[-1]
            found[-1] = (command, body.rstrip("\n"))
    return found


@pytest.fixture(scope="module")
def scenario_text(api_schemas: Path) -> str:
    document = api_schemas.parent / "scenario.md"
    if not document.exists():
        pytest.skip("the scenario's text is not beside this checkout")
    return document.read_text()


def test_the_commands_and_outputs_are_the_scenarios(scenario_text: str) -> None:
    ours = [c for step in (*SCENARIO, CLEANUP) for c in step.commands if not c.extra]
    theirs = scenario_blocks(scenario_text)
    assert [c.text for c in ours] == [command for command, _ in theirs]
    for command, (_, output) in zip(ours, theirs, strict=True):
        if output is None:
            assert command.compare is Compare.NONE, command.text
            continue
        expected = output
        if command.check == "proxy-config secret":
            # the one documented difference: OpenSSL's example CA is CA:TRUE
            row = "file-root:/etc/istio/tls-ca-certs/ca.crt                                "
            expected = expected.replace(row + "Cert Chain     ", row + "CA             ")
        assert command.expected == expected, command.text


def test_the_headings_are_the_scenarios(scenario_text: str) -> None:
    headings = re.findall(r"^## (\d+)\. (.*)$", scenario_text, re.MULTILINE)
    numbers = [int(number) for number, _ in headings]
    assert numbers == [step.number for step in (*SCENARIO, CLEANUP)]


def test_steps_are_numbered_and_waits_are_marked() -> None:
    assert [s.number for s in SCENARIO] == list(range(1, 11))
    extra = [c.text for s in SCENARIO for c in s.commands if c.extra]
    assert extra == [
        "meshlet wait --for=condition=Ready pod --all --timeout=60s",
        "meshlet -n test wait --for=condition=Ready pod --all --timeout=60s",
    ]
    (refused,) = [c for s in SCENARIO for c in s.commands if c.exit_code]
    assert refused.exit_code == 56 and refused.expected.endswith("exit code 56")


def test_a_command_is_consistent() -> None:
    with pytest.raises(ValueError, match="needs a comparison"):
        Command("meshlet get pods", expected="NAME")
    with pytest.raises(ValueError, match="check name"):
        Command("meshlet get pods", expected="NAME", compare=Compare.TABLE)


def test_split_commands_keeps_heredocs_and_continuations() -> None:
    block = "a\n\nb <<EOF\nx: 1\nEOF\nrm one \\\n    two\nc\n"
    assert split_commands(block) == ["a", "b <<EOF\nx: 1\nEOF", "rm one \\\n    two", "c"]


FORBIDDEN = {"asyncio", "socket", "os", "time", "subprocess", "pathlib", "io", "shutil", "random"}


@pytest.mark.parametrize("module", [meshlet.scenario.steps, meshlet.scenario.compare])
def test_pure_modules_import_nothing_impure(module: object) -> None:
    path = Path(str(getattr(module, "__file__", "")))
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in {"now", "utcnow", "today"}, path.name
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open", path.name
