"""A cell runs as in a notebook: its last expression is shown, and tracebacks quote the
offending lines (the in-box runtime, here through the local-process backend)."""

from __future__ import annotations

import pytest

from sandbox import Orchestrator


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("x = 6\nx * 7", "42\n"),
        ("'text'", "'text'\n"),
        ("x = 6\nx * 7;", ""),
        ("x = 6\nx * 7  ;  # no display", ""),
        ("print('a')", "a\n"),
        ("None", ""),
        ("x = 1", ""),
        ("for i in range(2):\n    i", ""),
        ("import sys\n[len(sys.argv), 2]", "[1, 2]\n"),
    ],
)
def test_the_last_expression_of_a_cell_is_shown(
    local_orc: Orchestrator, code: str, shown: str
) -> None:
    with local_orc.session("alice") as s:
        r = s.run(code)
        assert (r.exit_code, r.stdout, r.stderr) == (0, shown, "")


def test_a_traceback_quotes_the_offending_lines(local_orc: Orchestrator) -> None:
    with local_orc.session("alice") as s:
        r = s.run("def f(d):\n    return d['missing']\n\nf({})\n")
    assert r.exit_code == 1
    assert 'File "<sandbox>", line 4, in <module>\n    f({})\n' in r.stderr
    assert "File \"<sandbox>\", line 2, in f\n    return d['missing']\n" in r.stderr
    assert "sbxrt" not in r.stderr and r.stderr.endswith("KeyError: 'missing'\n")


def test_tracebacks_the_code_prints_itself_and_warnings_quote_lines_too(
    local_orc: Orchestrator,
) -> None:
    code = (
        "import traceback, warnings\n"
        "warnings.warn('careful')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    traceback.print_exc()\n"
    )
    with local_orc.session("alice") as s:
        r = s.run(code)
    assert r.exit_code == 0
    assert "<sandbox>:2: UserWarning: careful\n  warnings.warn('careful')\n" in r.stderr
    assert "line 4, in <module>\n    1 / 0\n" in r.stderr


def test_a_syntax_error_shows_the_line_and_no_runtime_frame(local_orc: Orchestrator) -> None:
    with local_orc.session("alice") as s:
        r = s.run("x = 1\nif x:\n  y = (\n")
    assert r.exit_code == 1
    assert r.stderr.startswith('  File "<sandbox>", line 3\n    y = (\n')
    assert "SyntaxError" in r.stderr and "sbxrt" not in r.stderr


def test_an_exception_in_the_shown_expression_is_an_ordinary_traceback(
    local_orc: Orchestrator,
) -> None:
    with local_orc.session("alice") as s:
        r = s.run("x = 0\n1 / x")
    assert r.exit_code == 1 and r.stdout == ""
    assert "line 2, in <module>\n    1 / x\n" in r.stderr
