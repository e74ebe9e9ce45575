"""The HTTP API keeps a run's output within a budget when the caller asks (`budget`), and
says where the whole of it is saved."""

from __future__ import annotations

import json

from tests.unit.http.test_api import Api, api, new_session, run  # noqa: F401 - the fixture

FLOOD = "for i in range(50_000):\n    print('row', i)"


def test_a_run_asked_for_a_budget_keeps_the_start_and_end_of_its_output(api: Api) -> None:  # noqa: F811
    async def main() -> None:
        async with api.client() as c:
            sid = await new_session(c)
            whole = (await c.post(f"/v1/sessions/{sid}/runs", json={"code": FLOOD})).json()
            cut = (
                await c.post(f"/v1/sessions/{sid}/runs", json={"code": FLOOD, "budget": 4000})
            ).json()
            assert len(whole["stdout"]) > 400_000 and whole["omitted"] == {}
            assert whole["outputs"]["stdout"].startswith("/workspace/.outputs/")
            assert cut["stdout"].startswith("row 0\n") and cut["stdout"].endswith("row 49999\n")
            assert len(cut["stdout"]) < 4000 + 300 and cut["omitted"]["stdout"] > 400_000
            saved = cut["outputs"]["stdout"]
            assert f"the whole stdout is in {saved}" in cut["stdout"]
            got = await c.get(f"/v1/sessions/{sid}/files/{saved.removeprefix('/workspace/')}")
            assert got.content.decode() == whole["stdout"]

    run(main)


def test_a_budget_out_of_range_is_refused(api: Api) -> None:  # noqa: F811
    async def main() -> None:
        async with api.client() as c:
            sid = await new_session(c)
            r = await c.post(f"/v1/sessions/{sid}/runs", json={"code": "1", "budget": 10})
            assert r.status_code in (400, 422) and "budget" in r.text

    run(main)


def test_a_streamed_runs_result_keeps_to_its_budget_too(api: Api) -> None:  # noqa: F811
    async def main() -> None:
        async with api.client() as c:
            sid = await new_session(c)
            body = {"code": FLOOD, "budget": 2000}
            async with c.stream("POST", f"/v1/sessions/{sid}/runs/stream", json=body) as r:
                text = (await r.aread()).decode()
            result = json.loads(text.split("event: result\ndata: ")[1].split("\n\n")[0])
            assert len(result["stdout"]) < 2000 + 300 and result["omitted"]["stdout"] > 0

    run(main)
