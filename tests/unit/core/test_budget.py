"""A run as a model is shown it: head and tail of each stream within a budget, cut in plain
words, never through a token."""

from __future__ import annotations

import re

import pytest

from sandbox.core.budget import MIN_BUDGET, SAVE_OVER, budgeted, head_tail, shares
from sandbox.exceptions import InvalidInputError
from sandbox.models import RunResult


def result(stdout: str, stderr: str = "", **fields: object) -> RunResult:
    return RunResult(
        exec_id="e1", exit_code=0, stdout=stdout, stderr=stderr, duration_s=0.1, **fields
    )  # type: ignore[arg-type]


def kept(shown: str) -> tuple[str, str]:
    """The head and tail around the one marker in `shown`."""
    head, _, tail = re.split(r"(\n\[\.\.\. .*? \.\.\.\]\n)", shown)
    return head, tail


def test_a_stream_within_its_even_share_is_kept_whole_and_leaves_the_rest() -> None:
    assert shares({"stdout": 100_000, "stderr": 300}, 20_000) == {"stderr": 300, "stdout": 19_700}
    assert shares({"stdout": 100_000, "stderr": 30_000}, 20_000) == {
        "stdout": 10_000,
        "stderr": 10_000,
    }
    assert shares({"stdout": 5, "stderr": 7}, 20_000) == {"stdout": 5, "stderr": 7}


def test_no_budget_can_cut_a_stream_that_needs_no_saved_copy() -> None:
    lengths = {"stdout": SAVE_OVER, "stderr": 10**6}
    assert shares(lengths, MIN_BUDGET)["stdout"] == SAVE_OVER


def test_a_short_result_is_returned_as_it_is() -> None:
    r = result("hello\n")
    assert budgeted(r, MIN_BUDGET) is r


def test_a_flood_keeps_its_head_and_tail_and_says_what_was_left_out_and_where() -> None:
    text = "".join(f"row {i}\n" for i in range(300_000))
    saved = "/workspace/.outputs/e1/stdout"
    r = budgeted(result(text, "Traceback: boom\n", outputs={"stdout": saved}), 20_000)
    assert r.stdout.startswith("row 0\nrow 1\n")
    assert r.stdout.endswith("row 299999\n")
    assert r.stderr == "Traceback: boom\n"
    assert len(r.stdout) < 20_000 + 300
    head, tail = kept(r.stdout)
    left_out = r.omitted["stdout"]
    assert left_out == len(text) - len(head) - len(tail) > 0
    assert f"{left_out:,} characters" in r.stdout
    assert f"the whole stdout is in {saved}" in r.stdout
    assert "\n[... " in r.stdout and " ...]\n" in r.stdout


def test_cuts_fall_on_line_ends_when_one_is_near() -> None:
    text = "".join(f"{i:05d} {'x' * 40}\n" for i in range(5000))
    head, tail = head_tail(text, 10_000)
    assert head.endswith("\n") and tail.startswith("0") and tail.endswith("\n")
    assert text.startswith(head) and text.endswith(tail)


def test_a_cut_never_splits_a_token() -> None:
    text = "[EMAIL_12345]" * 10_000
    for keep in range(2_000, 2_030):
        head, tail = head_tail(text, keep)
        assert head.endswith("]") and tail.startswith("[")


def test_without_a_saved_copy_the_marker_says_so() -> None:
    r = budgeted(result("y" * 50_000), MIN_BUDGET)
    assert "could not be saved" in r.stdout
    head, tail = kept(r.stdout)
    assert r.omitted == {"stdout": 50_000 - len(head) - len(tail)}


@pytest.mark.parametrize("bad", [0, MIN_BUDGET - 1, 10**7, 2.5, True, "20000"])
def test_a_budget_out_of_range_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        budgeted(result("x"), bad)  # type: ignore[arg-type]
