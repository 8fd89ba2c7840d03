"""Every ``--help`` of every command and subcommand works (a ``%`` in a help string
unescaped, or a bad format, shows only when that one page is asked for)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence

import pytest

from cloud_sync import cli as cloud_cli
from edge_agent import cli as agent_cli
from model_export import cli as export_cli

Main = Callable[[Sequence[str] | None], int]
CLIS: dict[str, tuple[Callable[[], argparse.ArgumentParser], Main]] = {
    "edge-agent": (agent_cli._parser, agent_cli.main),
    "cloud-sync": (cloud_cli._parser, cloud_cli.main),
    "model-export": (export_cli._parser, export_cli.main),
}


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def _commands() -> list[tuple[str, tuple[str, ...]]]:
    return [(prog, path) for prog, (make, _) in CLIS.items() for path in _walk(make(), ())]


def test_the_walk_finds_the_subcommands() -> None:
    found = {(prog, " ".join(path)) for prog, path in _commands()}
    assert ("cloud-sync", "releases publish") in found
    assert ("edge-agent", "model bench") in found
    assert ("model-export", "build") in found


@pytest.mark.parametrize(
    ("prog", "path"), _commands(), ids=[" ".join((p, *path)) for p, path in _commands()]
)
def test_help_works(prog: str, path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    main = CLIS[prog][1]
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: "), out
    # Every option says what it is for.
    parser = CLIS[prog][0]()
    for name in path:
        parser = next(
            a.choices[name] for a in parser._actions if isinstance(a, argparse._SubParsersAction)
        )
    bare = [
        a.option_strings[-1]
        for a in parser._actions
        if a.option_strings and not a.help and not isinstance(a, argparse._HelpAction)
    ]
    assert not bare, f"{prog} {' '.join(path)}: options without help text: {bare}"
