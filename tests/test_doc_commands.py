"""Every command shown in README.md and docs/ code blocks exists: its subcommand path
parses, `--help` works, and each `--option` the line uses is one the command has.

A doc that drifts from the CLI (a renamed option, a removed subcommand) fails here,
not in a new user's first hour."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable, Iterator

import pytest

from cloud_sync import cli as cloud_cli
from edge_agent import cli as agent_cli
from model_export import cli as export_cli
from tests.conftest import REPO

PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "edge-agent": agent_cli._parser,
    "cloud-sync": cloud_cli._parser,
    "model-export": export_cli._parser,
}
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
# A program name at the start of a command: after a prompt, sudo, env settings, a venv's
# bin/ or a shell operator (&&, ;, |, $( ).
PROGRAM = re.compile(
    r"(?:^|&&|;|\||\$\(|\bsudo\s+|^\$\s+)\s*(?:[A-Z_]+=\S+\s+)*(?:\S*/bin/)?"
    r"(edge-agent|cloud-sync|model-export)(?=\s|$)"
)


INLINE = re.compile(r"`([^`\n]+)`")
DIAGRAM = re.compile(r"[│┌└▼▶─]")
"""Box-drawing characters: a fence that is a diagram, not commands."""


def _words(line: str, match: re.Match[str]) -> list[str]:
    rest = line[match.end() :].split(" #", 1)[0]
    rest = re.split(r"&&|;|\|(?!\|)|\)", rest, maxsplit=1)[0]
    try:
        return shlex.split(rest)
    except ValueError:
        return rest.split()


def _commands() -> Iterator[tuple[str, int, str, list[str]]]:
    """(doc, line number, program, the words after it) of every command: each line of a
    fenced block, and each inline code span that starts with a program."""
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        fenced: list[tuple[int, int]] = []
        for block in FENCE.finditer(text):
            fenced.append(block.span())
            if DIAGRAM.search(block.group(1)):
                continue
            first_line = text.count("\n", 0, block.start(1)) + 1
            lines = block.group(1).splitlines()
            n = 0
            while n < len(lines):
                line, start = lines[n], n
                while line.endswith("\\") and n + 1 < len(lines):  # continued lines
                    n += 1
                    line = line[:-1] + " " + lines[n].strip()
                for match in PROGRAM.finditer(line):
                    yield doc.name, first_line + start, match.group(1), _words(line, match)
                n += 1
        for span in INLINE.finditer(text):
            if any(a <= span.start() < b for a, b in fenced):
                continue
            found = PROGRAM.match(span.group(1))
            if found is not None:
                line = text.count("\n", 0, span.start()) + 1
                yield doc.name, line, found.group(1), _words(span.group(1), found)


COMMANDS = list(_commands())


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(name)
            return found if isinstance(found, argparse.ArgumentParser) else None
    return None


def _has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def test_the_docs_show_commands_of_all_three_programs() -> None:
    assert {program for _, _, program, _ in COMMANDS} == set(PARSERS)
    assert len(COMMANDS) > 50


@pytest.mark.parametrize(
    ("doc", "line", "program", "words"),
    COMMANDS,
    ids=[f"{d}:{n}" for d, n, _, _ in COMMANDS],
)
def test_documented_command_exists(
    doc: str, line: int, program: str, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = PARSERS[program]()
    path: list[str] = []
    for word in words:
        if word.startswith("-") or not _has_subcommands(parser):
            break
        sub = _subparser(parser, word)
        if sub is None:
            if word.isupper() or "|" in word or word.startswith("<"):
                break  # a placeholder (`COMMAND`, `list|show`): the doc names no subcommand
            pytest.fail(f"{doc}:{line}: `{program} {' '.join(words)}`: no subcommand {word!r}")
        parser = sub
        path.append(word)
    known = {s for a in parser._actions for s in a.option_strings}
    for word in words[len(path) :]:
        option = word.split("=", 1)[0].strip("[]").rstrip(".")
        if re.fullmatch(r"--[a-z][a-z0-9-]*", option) and option not in known:
            pytest.fail(f"{doc}:{line}: `{program} {' '.join(path)}` has no option {option}")
    with pytest.raises(SystemExit) as done:
        PARSERS[program]().parse_args([*path, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")
