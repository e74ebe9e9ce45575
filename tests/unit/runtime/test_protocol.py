"""The wire protocol both ends share: frames round-trip, bad headers are refused."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from sandbox.images import image_tag
from sandbox.runtime import protocol

RUNTIME_DIR = Path(protocol.__file__).parent


def split_run(frame: bytes) -> tuple[bytes, ...]:
    nl = frame.index(b"\n") + 1
    sizes = protocol.parse_run_header(frame[:nl])
    sections, at = [], nl
    for size in sizes:
        sections.append(frame[at : at + size])
        at += size
    assert at == len(frame)
    return tuple(sections)


def test_a_run_frame_round_trips() -> None:
    frame = protocol.encode_run(
        "print('é')", {"A": "x=y", "B": ""}, "/workspace", "tok", {"max_call_bytes": 2048}
    )
    code, env, cwd, token, options = split_run(frame)
    assert code.decode() == "print('é')"
    assert protocol.decode_env(env) == {"A": "x=y", "B": ""}
    assert (cwd, token) == (b"/workspace", b"tok")
    assert protocol.decode_options(options) == {"max_call_bytes": 2048}


def test_an_empty_run_frame_round_trips() -> None:
    code, env, cwd, token, options = split_run(protocol.encode_run("", {}, "/", "", {}))
    assert (code, env, cwd, token) == (b"", b"", b"/", b"")
    assert protocol.decode_env(env) == {} and protocol.decode_options(options) == {}


@pytest.mark.parametrize(
    "line",
    [
        b"RUN 1 2 3 4 5",  # unterminated
        b"RUN 1 2 3 4\n",  # the old four-field frame
        b"RUN 1 2 3 4 5 6\n",
        b"RUX 1 2 3 4 5\n",
        b"run 1 2 3 4 5\n",
        b"RUN 1 2 -3 4 5\n",
        b"RUN 1 2 3 4 0x5\n",
        b"RUN 1  2 3 4 5\n",
        b"RUN 1 2 3 4 \xd9\xa3\n",  # a non-ASCII digit
        b"RUN 12345678901 2 3 4 5\n",
        b"RUN 1 2 3 4 4097\n",  # options over their cap
        b"RUN " + b"1" * 200 + b"\n",
    ],
)
def test_a_malformed_run_header_is_refused(line: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_run_header(line)


def test_oversized_options_are_refused_by_both_ends() -> None:
    options = {f"k{i}": i for i in range(1000)}
    with pytest.raises(protocol.ProtocolError):
        protocol.encode_run("", {}, "/", "", options)
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_options(json.dumps(options).encode())


@pytest.mark.parametrize(
    "raw", [b"[1]", b'{"a": "1"}', b'{"a": true}', b'{"a": -1}', b'{"a": 1.5}', b"{", b"null"]
)
def test_options_other_than_non_negative_integers_are_refused(raw: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_options(raw)


def test_an_env_item_without_an_equals_sign_is_refused() -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_env(b"A=1\0B")


def test_a_non_ascii_token_is_refused() -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.encode_run("", {}, "/", "tök", {})


@pytest.mark.parametrize("status", [0, 1, 7, 255, -1, 9999, -9999])
def test_an_exit_line_round_trips(status: int) -> None:
    assert protocol.parse_control_line(protocol.encode_exit(status)) == (protocol.EXIT, status)


def test_a_call_frame_carries_its_body_length() -> None:
    frame = protocol.encode_call(b'{"id": 1}')
    nl = frame.index(b"\n") + 1
    assert protocol.parse_control_line(frame[:nl]) == (protocol.CALL, 9)
    assert frame[nl:] == b'{"id": 1}'


@pytest.mark.parametrize(
    "line",
    [
        b"EXIT 0",  # unterminated
        b"EXIT 10000\n",
        b"EXIT --1\n",
        b"EXIT 1 2\n",
        b"exit 1\n",
        b"EXIT\n",
        b"CALL -1\n",
        b"CALL 1234567890\n",
        b"CALL 12 \n",
        b"RESP 1\n",
        b"RUN 1 2 3 4 5\n",
        b"CALL " + b" " * 30 + b"1\n",  # longer than a control line may be
    ],
)
def test_a_malformed_control_line_is_refused(line: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_control_line(line)


def test_a_response_frame_round_trips() -> None:
    frame = protocol.encode_response(3, {"ok": False, "error": {"code": protocol.TOO_LARGE}})
    nl = frame.index(b"\n") + 1
    assert protocol.parse_response_header(frame[:nl]) == len(frame) - nl
    assert json.loads(frame[nl:]) == {"id": 3, "ok": False, "error": {"code": "too_large"}}


@pytest.mark.parametrize(
    "line", [b"RESP 1", b"RESP\n", b"RESP x\n", b"CALL 1\n", b"RESP " + b"1" * 40 + b"\n"]
)
def test_a_malformed_response_header_is_refused(line: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_response_header(line)


def test_error_codes_are_distinct_and_include_every_documented_one() -> None:
    assert len(set(protocol.ERROR_CODES)) == len(protocol.ERROR_CODES)
    assert {
        "unauthorized",
        "forbidden",
        "not_found",
        "bad_request",
        "too_large",
        "timeout",
        "rate_limited",
        "upstream_error",
        "unavailable",
    } <= set(protocol.ERROR_CODES)


def test_the_runtime_raises_a_matching_error_for_every_code() -> None:
    spec = importlib.util.spec_from_file_location("sbxrt_under_test", RUNTIME_DIR / "sbxrt.py")
    assert spec is not None and spec.loader is not None
    sbxrt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sbxrt)
    assert set(sbxrt._ERRORS) == set(protocol.ERROR_CODES)
    assert sbxrt._ERRORS[protocol.TOO_LARGE] is sbxrt.ToolInputError


@pytest.mark.parametrize("name", ["protocol.py", "sbxrt.py", "cells.py"])
def test_runtime_files_import_only_the_stdlib_and_the_runtime_folder(name: str) -> None:
    # The box has no `sandbox` package; `servers` is the package generated into it.
    allowed = set(sys.stdlib_module_names) | {"__future__", "servers"}
    tree = ast.parse((RUNTIME_DIR / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for module in names:
            if module.startswith("sandbox."):
                # Only under TYPE_CHECKING, for the type checker.
                assert module == "sandbox.runtime", module
            else:
                assert module.split(".")[0] in allowed, module


# The image tag: it must follow every file the image ships from this folder.


@pytest.fixture
def runtime_copy(tmp_path: Path) -> tuple[Path, Path]:
    runtime = tmp_path / "runtime"
    shutil.copytree(RUNTIME_DIR, runtime, ignore=shutil.ignore_patterns("__pycache__"))
    dockerfile = tmp_path / "Dockerfile.sandbox"
    shutil.copy(RUNTIME_DIR.parents[1] / "Dockerfile.sandbox", dockerfile)
    return runtime, dockerfile


def test_the_image_tag_depends_on_content_not_on_where_the_folder_lies(
    runtime_copy: tuple[Path, Path],
) -> None:
    assert image_tag(*runtime_copy) == image_tag()


def test_the_image_tag_changes_when_any_runtime_file_changes(
    runtime_copy: tuple[Path, Path],
) -> None:
    runtime, dockerfile = runtime_copy
    before = image_tag(runtime, dockerfile)
    files = sorted(p for p in runtime.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"protocol.py", "sbxrt.py"}
    for path in files:
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert image_tag(runtime, dockerfile) != before, path.name
        path.write_bytes(original)
    assert image_tag(runtime, dockerfile) == before


def test_the_image_tag_changes_when_a_runtime_file_is_added_or_renamed(
    runtime_copy: tuple[Path, Path],
) -> None:
    runtime, dockerfile = runtime_copy
    before = image_tag(runtime, dockerfile)
    (runtime / "extra.py").write_text("")
    added = image_tag(runtime, dockerfile)
    (runtime / "extra.py").rename(runtime / "other.py")
    assert len({before, added, image_tag(runtime, dockerfile)}) == 3


def test_the_image_tag_changes_with_the_dockerfile_but_not_with_caches(
    runtime_copy: tuple[Path, Path],
) -> None:
    runtime, dockerfile = runtime_copy
    before = image_tag(runtime, dockerfile)
    (runtime / "__pycache__").mkdir()
    (runtime / "__pycache__" / "sbxrt.cpython-311.pyc").write_bytes(b"\0")
    assert image_tag(runtime, dockerfile) == before
    dockerfile.write_text(dockerfile.read_text() + "# changed\n")
    assert image_tag(runtime, dockerfile) != before


def test_run_options_round_trip_and_malformed_ones_are_refused() -> None:
    from sandbox.runtime import protocol as p

    frame = p.encode_run("x", {}, "/w", "t", {"max_call_bytes": 4096, "other_cap": 0})
    options_raw = frame.split(b"\n", 1)[1][len(b"x/wt") :]
    assert p.decode_options(options_raw) == {"max_call_bytes": 4096, "other_cap": 0}
    assert p.decode_options(b"") == {}
    for bad in (b"a=-1", b"A=1", b"a=1,,b=2", b'{"a": 1}', b"a=1e3", b"a=\xd9\xa1"):
        with pytest.raises(p.ProtocolError):
            p.decode_options(bad)
    with pytest.raises(p.ProtocolError):
        p.encode_run("x", {}, "/w", "t", {"Bad": 1})


def test_the_waiting_runtime_imports_nothing_heavy() -> None:
    # json (and the re it pulls in), or importlib.util (and its dozen modules), would cost every
    # waiting container memory (bench_runs measures it). -S: no site, so little is preloaded.
    import subprocess
    from pathlib import Path

    runtime = str(Path(__file__).parents[3] / "sandbox" / "runtime" / "sbxrt.py")
    probe = (
        "import sys\nbefore = set(sys.modules)\n"
        f"path = {runtime!r}\n"
        "exec(compile(open(path).read(), path, 'exec'), {'__name__': 'probe', '__file__': path})\n"
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = set(ast.literal_eval(out.stdout.strip()))
    assert not loaded & {"json", "re", "importlib.util", "contextlib"}, sorted(loaded)


def test_the_runtime_uses_the_compiled_protocol_the_image_ships(tmp_path: Path) -> None:
    import py_compile
    import shutil
    import subprocess

    runtime = Path(__file__).parents[3] / "sandbox" / "runtime"
    for name in ("sbxrt.py", "protocol.py", "cells.py"):
        shutil.copy2(runtime / name, tmp_path / name)
    for name in ("protocol", "cells"):
        py_compile.compile(str(tmp_path / f"{name}.py"), cfile=str(tmp_path / f"{name}.pyc"))
    probe = (
        "import builtins\n"
        f"path = {str(tmp_path / 'sbxrt.py')!r}\n"
        "code = compile(open(path).read(), path, 'exec')\n"
        "def refuse(*a, **k): raise AssertionError('compiled the protocol again')\n"
        "builtins.compile = refuse\n"
        "ns = {'__name__': 'probe', '__file__': path}\n"
        "exec(code, ns)\n"
        "print(ns['protocol'].RUN)"
    )
    run = [sys.executable, "-I", "-c", probe]
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout == "b'RUN'\n"
    (tmp_path / "protocol.py").write_text((tmp_path / "protocol.py").read_text() + "\n# edited\n")
    stale = subprocess.run(run, capture_output=True, text=True)
    assert stale.returncode != 0 and "compiled the protocol again" in stale.stderr  # no stale pyc
