"""search.cli: the subcommand dispatcher (no model, no store: each command's run() is replaced)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import search.cli as cli

CALLS: list[tuple[str, argparse.Namespace]] = []


# A subcommand module of its own (this test module), registered through COMMANDS like any other.
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("fake", help="a test command")
    p.add_argument("--n", type=int, default=1)
    return p


def run(args: argparse.Namespace) -> int:
    CALLS.append(("fake", args))
    return 7


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, argparse.Namespace]]:
    """search and eval record their arguments instead of loading anything."""
    CALLS.clear()
    import search.cli.eval
    import search.cli.search

    for name, module in (("search", search.cli.search), ("eval", search.cli.eval)):
        monkeypatch.setattr(module, "run", lambda args, name=name: CALLS.append((name, args)) or 0)
    return CALLS


def test_bare_text_is_a_search_and_eval_is_a_subcommand(recorded) -> None:
    assert cli.main(["repair", "bicycles", "--limit", "3"]) == 0
    assert cli.main(["--json", "bake bread"]) == 0
    assert cli.main(["eval", "set.jsonl", "--no-exact"]) == 0
    assert cli.main(["search", "eval", "--json"]) == 0  # the word "eval" can be searched now
    assert cli.main(["search", "search"]) == 0
    (c1, a1), (c2, a2), (c3, a3), (c4, a4), (c5, a5) = recorded
    assert (c1, a1.text, a1.limit) == ("search", ["repair", "bicycles"], 3)
    assert (c2, a2.text, a2.json) == ("search", ["bake bread"], True)
    assert (c3, a3.labelled, a3.no_exact) == ("eval", "set.jsonl", True)
    assert (c4, a4.text, a4.json) == ("search", ["eval"], True)
    assert (c5, a5.text) == ("search", ["search"])


def test_each_command_is_one_module(recorded, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(cli.COMMANDS, "fake", __name__)
    assert cli.main(["fake", "--n", "4"]) == 7
    assert recorded[-1][0] == "fake" and recorded[-1][1].n == 4
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("search", "eval", "fake"):
        assert name in out
    # a command whose module is not installed is not offered: its name is searched for
    monkeypatch.setitem(cli.COMMANDS, "fake", "search.cli.no_such_module")
    assert cli.main(["fake", "--n", "4"]) == 2  # --n is no search option
    assert "unrecognized arguments: --n 4" in capsys.readouterr().err
    assert cli.main(["fake"]) == 0
    assert recorded[-1][0] == "search" and recorded[-1][1].text == ["fake"]
    assert "fake" not in (cli.main(["--help"]), capsys.readouterr().out)[1]


def test_only_the_command_asked_for_is_imported() -> None:
    code = ("import sys, search.cli as c, search.cli.search as s; s.run = lambda a: 0; c.main(['bread']); "
            "print(sorted(m for m in sys.modules if m.startswith(('search.cli.', 'search.evaluation', 'search.http', "
            "'fastapi', 'uvicorn', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['search.cli.common', 'search.cli.search']"


def test_argument_errors_are_one_line(capsys) -> None:
    assert cli.main(["eval", "set.jsonl", "--limit", "many"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("esco-search: error: argument --limit: invalid int value: 'many'")
    assert "(see `esco-search eval --help`)" in err
    assert cli.main(["bread", "--threshold", "high"]) == 2
    assert "(see `esco-search search --help`)" in capsys.readouterr().err


def test_no_text_and_no_pipe_asks_for_one(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("search.cli.search._stdin_is_a_pipe", lambda: False)
    assert cli.main([]) == 2
    assert "give a text to search for" in capsys.readouterr().err
    assert cli.main(["--batch-size", "0", "bread"]) == 2
    assert "--batch-size must be at least 1, got 0" in capsys.readouterr().err
    assert cli.main(["--file", "/no/such/queries.txt"]) == 2
    assert "--file /no/such/queries.txt: cannot read it" in capsys.readouterr().err


def test_quiet_model_loading_and_filters_have_one_home() -> None:
    from search.cli import add_filter_arguments, quiet_model_loading
    from search.cli.common import add_filter_arguments as common_filters
    from search.cli.common import quiet_model_loading as common_quiet

    assert add_filter_arguments is common_filters and quiet_model_loading is common_quiet


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["search", "--limit", "0", "x"], 2)])
def test_the_command_exits_with_mains_code_its_objects_frozen_and_exit_handlers_run(argv: list[str],
                                                                                      code: int) -> None:
    script = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('exit handler ran, frozen objects:', gc.get_freeze_count() > 0))\n"
        f"sys.argv = ['esco-search', *{argv!r}]\n"
        "from search.cli import console\n"
        "raise SystemExit(console())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert "exit handler ran, frozen objects: True" in done.stdout


def test_the_installed_command_is_console() -> None:
    import tomllib
    from pathlib import Path

    scripts = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["esco-search"] == "search.cli:console"
