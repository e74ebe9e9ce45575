"""Long output saved whole in the workspace: within the quota, the newest runs only, and
never through what the box planted."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox import Orchestrator
from sandbox.core.budget import SAVE_OVER
from sandbox.core.outputs import save_outputs


def streams(out: bytes, err: bytes = b"") -> dict[str, tuple[bytes, str]]:
    return {"stdout": (out, out.decode()), "stderr": (err, err.decode())}


def test_only_streams_a_budget_could_cut_are_saved(tmp_path: Path) -> None:
    long = b"z" * (SAVE_OVER + 1)
    saved = save_outputs(tmp_path, "run1", streams(long, b"short"), keep=10)
    assert saved == {"stdout": "/workspace/.outputs/run1/stdout"}
    assert (tmp_path / ".outputs/run1/stdout").read_bytes() == long
    assert not (tmp_path / ".outputs/run1/stderr").exists()
    assert save_outputs(tmp_path, "run2", streams(b"hi"), keep=10) == {}


def test_saving_can_be_turned_off(tmp_path: Path) -> None:
    assert save_outputs(tmp_path, "run1", streams(b"z" * 5000), keep=0) == {}
    assert not (tmp_path / ".outputs").exists()


def test_only_the_newest_runs_outputs_stay(tmp_path: Path) -> None:
    for i in range(5):
        save_outputs(tmp_path, f"run{i}", streams(b"z" * 5000, b"e" * 5000), keep=3)
        os.utime(tmp_path / f".outputs/run{i}", (1000 + i, 1000 + i))
    assert sorted(p.name for p in (tmp_path / ".outputs").iterdir()) == ["run2", "run3", "run4"]


def test_a_link_planted_where_outputs_go_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".outputs").symlink_to(outside)
    assert save_outputs(ws, "run1", streams(b"z" * 5000), keep=3) == {}
    assert list(outside.iterdir()) == []


def test_a_full_workspace_saves_nothing_and_says_so(tmp_path: Path) -> None:
    (tmp_path / ".outputs").write_text("a file where the folder should be")
    assert save_outputs(tmp_path, "run1", streams(b"z" * 5000), keep=3) == {}


def test_a_runs_long_output_is_saved_in_its_workspace(local_orc: Orchestrator) -> None:
    with local_orc.session("alice") as s:
        r = s.run("print('z' * 5000)\nprint('short', file=__import__('sys').stderr)")
        assert r.outputs == {"stdout": f"/workspace/.outputs/{r.exec_id}/stdout"}
        assert s.download(f".outputs/{r.exec_id}/stdout") == b"z" * 5000 + b"\n"
        again = s.run(f"print(len(open('.outputs/{r.exec_id}/stdout').read()))")
        assert again.stdout == "5001\n" and again.outputs == {}
