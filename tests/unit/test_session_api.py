"""One session interface: the embedded Session and both remote sessions have the same methods,
parameters and defaults, and the async stream hands each event over as it arrives."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import textwrap
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from sandbox import Session
from sandbox.client import AsyncClient, AsyncRemoteSession, Client, RemoteSession
from sandbox.models import OutputEvent, RunResult
from sandbox.session_api import AsyncSessionAPI, SessionAPI

# The async lifecycle is named as in httpx and asyncio (house rule 4); the rest is the same.
ASYNC_NAMES = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
# An implementation may take more parameters after the interface's if they have defaults:
# callers of the interface never pass them (the embedded `run` takes an `on_output` callback
# and a run `slot`, which a remote session cannot).


def members(protocol: type) -> dict[str, object]:
    return {
        name: value
        for name, value in vars(protocol).items()
        if (callable(value) or isinstance(value, property))
        and (not name.startswith("_") or name in (*ASYNC_NAMES.values(), *ASYNC_NAMES))
    }


def assigned_in_init(cls: type) -> set[str]:
    """The `self.<name> = ...` attributes `cls.__init__` sets."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    targets = [
        t
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
    ]
    names = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
    return {
        n.attr
        for n in names
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
    }


def parameters(fn: Callable[..., object]) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def assert_same_signature(cls: type, name: str, wanted: Callable[..., object]) -> None:
    got, want = parameters(getattr(cls, name)), parameters(wanted)
    assert got[: len(want)] == want, f"{cls.__name__}.{name}"
    extra = got[len(want) :]
    assert all(default is not inspect.Parameter.empty for _, _, default in extra), extra


def id_and_owner_present(cls: type, proto: type) -> None:
    for name, value in members(proto).items():
        if isinstance(value, property):
            assert hasattr(cls, name) or name in assigned_in_init(cls), f"{cls.__name__}.{name}"


@pytest.mark.parametrize("cls", [Session, RemoteSession], ids=lambda c: c.__module__)
def test_every_session_has_every_method_of_the_interface(cls: type) -> None:
    id_and_owner_present(cls, SessionAPI)
    for name, wanted in members(SessionAPI).items():
        if isinstance(wanted, property):
            continue
        assert callable(wanted)
        assert_same_signature(cls, name, wanted)
        assert not inspect.iscoroutinefunction(getattr(cls, name)), f"{cls.__name__}.{name}"


def test_the_async_session_has_every_method_of_the_async_interface() -> None:
    id_and_owner_present(AsyncRemoteSession, AsyncSessionAPI)
    for name, wanted in members(AsyncSessionAPI).items():
        if isinstance(wanted, property):
            continue
        assert callable(wanted)
        assert_same_signature(AsyncRemoteSession, name, wanted)
        method = getattr(AsyncRemoteSession, name)
        if name == "stream":
            assert inspect.isasyncgenfunction(method)
        else:
            assert inspect.iscoroutinefunction(method), name


def test_the_async_interface_is_the_sync_one_awaited() -> None:
    sync, awaited = members(SessionAPI), members(AsyncSessionAPI)
    assert {ASYNC_NAMES.get(n, n) for n in sync} == set(awaited)
    for name, fn in sync.items():
        if callable(fn):
            assert parameters(fn) == parameters(awaited[ASYNC_NAMES.get(name, name)])


def test_the_remote_sessions_are_instances_of_the_interfaces() -> None:
    with Client("http://api.test") as c:
        assert isinstance(RemoteSession(c, "s1", "alice"), SessionAPI)
    ac = AsyncClient("http://api.test")
    assert isinstance(AsyncRemoteSession(ac, "s1", "alice"), AsyncSessionAPI)
    asyncio.run(ac.aclose())


def test_the_async_stream_yields_its_first_event_before_the_run_ends() -> None:
    result = RunResult(exec_id="e1", exit_code=0, stdout="tick\n", stderr="", duration_s=0.1)

    async def main() -> list[OutputEvent | RunResult]:
        first_event_received = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield b'event: stdout\ndata: "tick\\n"\n\n'
            # The run "ends" only once the client has the first event: a client that waits for
            # the whole body before yielding never gets here and fails on this bound.
            await asyncio.wait_for(first_event_received.wait(), timeout=10)
            yield f"event: result\ndata: {json.dumps(result.model_dump())}\n\n".encode()

        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/sessions":
                return httpx.Response(201, json={"id": "s1", "owner": "alice"})
            return httpx.Response(
                200, content=body(), headers={"content-type": "text/event-stream"}
            )

        events: list[OutputEvent | RunResult] = []
        async with AsyncClient("http://api.test", transport=httpx.MockTransport(handler)) as c:
            s = await c.session()
            async for event in s.stream("print('tick')"):
                events.append(event)
                first_event_received.set()
        return events

    events = asyncio.run(asyncio.wait_for(main(), timeout=20))
    assert events == [OutputEvent(stream="stdout", text="tick\n"), result]
