"""The OpenAPI document says what the API does (bearer keys, our error envelope, the
Idempotency-Key header), and /docs works offline under a CSP that allows exactly what it loads."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jsonschema
import pytest

from sandbox import Orchestrator
from sandbox.http_api import create_app
from sandbox.keys import KeyStore
from tests.unit.conftest import MakeOrc

IDEMPOTENT = {("post", "/v1/sessions/{sid}/runs"), ("post", "/v1/sessions/{sid}/commands")}


@pytest.fixture
def orc(make_orc: MakeOrc) -> Orchestrator:
    return make_orc()


@pytest.fixture
def doc(orc: Orchestrator) -> dict[str, Any]:
    return create_app(orchestrator=orc).openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def get(app: Any, *paths: str, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            return [await c.get(p, headers=headers) for p in paths]

    return asyncio.run(main())


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    validate(doc)  # type: ignore[arg-type]


def test_every_v1_operation_requires_the_bearer_scheme(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, op in operations(doc):
        expected = [{"bearerAuth": []}] if path.startswith("/v1/") else None
        assert op.get("security") == expected, (method, path)


def test_errors_are_documented_as_the_envelope_the_api_sends(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            if status >= "400":
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (method, path, status)
        if path.startswith("/v1/"):
            assert "`unauthorized`" in op["responses"]["401"]["description"]
            assert (
                "invalid_token"
                in op["responses"]["401"]["headers"]["WWW-Authenticate"]["description"]
            )
    run = doc["paths"]["/v1/sessions/{sid}/runs"]["post"]["responses"]
    assert "`not_found`" in run["404"]["description"]
    assert "`invalid_request`" in run["422"]["description"]
    assert "`queue_full`" in run["429"]["description"] and "Retry-After" in run["429"]["headers"]


def test_real_error_bodies_match_the_documented_schema(orc: Orchestrator) -> None:
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    app = create_app(orchestrator=orc, keys=keys)
    error = app.openapi()["components"]["schemas"]["Error"]
    auth = {"Authorization": f"Bearer {keys.create('ann')[1]}"}
    (unauthorized,) = get(app, "/v1/skills")
    missing, invalid = get(app, "/v1/sessions/" + "0" * 32, "/v1/tools?limit=x", headers=auth)
    assert [r.status_code for r in (unauthorized, missing, invalid)] == [401, 404, 422]
    for response in (unauthorized, missing, invalid):
        jsonschema.validate(response.json(), error)
    assert invalid.json()["error"]["code"] == "invalid_request"


def test_the_idempotency_key_is_documented_where_it_is_honoured(doc: dict[str, Any]) -> None:
    found = set()
    for method, path, op in operations(doc):
        params = {p["name"]: p for p in op.get("parameters", [])}
        if "Idempotency-Key" in params:
            found.add((method, path))
            assert params["Idempotency-Key"]["in"] == "header"
            assert "`idempotency_result_gone`" in op["responses"]["410"]["description"]
    assert found == IDEMPOTENT


def test_every_operation_says_what_it_does_under_its_function_name(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids)) and "create_session" in ids
    for method, path, op in operations(doc):
        assert op.get("description"), (method, path)


def test_files_and_streams_are_documented_as_bytes_and_events(doc: dict[str, Any]) -> None:
    upload = doc["paths"]["/v1/sessions/{sid}/files/{path}"]["put"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    download = doc["paths"]["/v1/sessions/{sid}/files/{path}"]["get"]["responses"]["200"]
    assert list(download["content"]) == ["application/octet-stream"]
    stream = doc["paths"]["/v1/sessions/{sid}/runs/stream"]["post"]["responses"]["200"]
    assert list(stream["content"]) == ["text/event-stream"]


# -- /docs ----------------------------------------------------------------------------------


class Page(HTMLParser):
    """What an HTML page makes a browser load, and whatever it holds inline."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str, str]] = []  # (directive that governs it, url)
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "style" in a or any(k.startswith("on") for k in a):
            self.inline.append(f"attribute on <{tag}>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = a.get("src") is None
            if a.get("src"):
                self.loads.append(("script-src", str(a["src"])))
        if tag == "link" and a.get("href"):
            rel = str(a.get("rel"))
            self.loads.append(("style-src" if rel == "stylesheet" else "img-src", str(a["href"])))
        if tag == "img" and a.get("src"):
            self.loads.append(("img-src", str(a["src"])))

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("<script> body")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def policy(header: str) -> dict[str, set[str]]:
    return {
        parts[0]: set(parts[1:]) for parts in (d.split() for d in header.split(";") if d.strip())
    }


KIND = {"script-src": "javascript", "style-src": "text/css", "img-src": "image/"}


def test_docs_load_only_what_their_csp_allows_and_nothing_from_elsewhere(
    orc: Orchestrator,
) -> None:
    app = create_app(orchestrator=orc)
    page = get(app, "/docs")[0]
    assert page.status_code == 200
    csp = policy(page.headers["content-security-policy"])
    assert csp["default-src"] == {"'none'"}
    assert csp["frame-ancestors"] == {"'none'"}
    for sources in csp.values():
        assert not sources & {"'unsafe-inline'", "'unsafe-eval'", "*", "https:", "http:"}
    parsed = Page()
    parsed.feed(page.text)
    assert parsed.inline == []  # nothing a CSP without 'unsafe-inline' would block
    assert {d for d, _ in parsed.loads} == {"script-src", "style-src", "img-src"}
    for directive, url in parsed.loads:
        assert not urlsplit(url).scheme and not urlsplit(url).netloc, url  # our own origin
        assert "'self'" in csp[directive], (directive, url)
        asset = get(app, urlsplit(urljoin("http://api/docs", url)).path)[0]
        assert asset.status_code == 200, url
        assert KIND[directive] in asset.headers["content-type"], url
        if url.endswith(".css"):
            # What the stylesheet itself loads: data: images only, and img-src allows them.
            schemes = set(re.findall(r"url\(\s*[\"']?([a-zA-Z][a-zA-Z0-9+.-]*:)", asset.text))
            assert schemes == {"data:"} and "data:" in csp["img-src"]
            assert not re.search(r"url\(\s*[\"']?//", asset.text)
            assert "@import" not in asset.text
        if url.endswith("init.js"):
            spec = re.search(r'url: "([^"]+)"', asset.text)
            assert spec is not None and "validatorUrl: null" in asset.text
            assert not urlsplit(spec.group(1)).netloc and "'self'" in csp["connect-src"]
            fetched = get(app, urlsplit(urljoin("http://api/docs", spec.group(1))).path)[0]
            assert fetched.json()["openapi"].startswith("3.1")


def test_an_unknown_docs_file_is_a_404(orc: Orchestrator) -> None:
    for response in get(create_app(orchestrator=orc), "/docs/x.js", "/docs/%2e%2e%2fsetup.py"):
        assert response.status_code == 404


def test_docs_and_the_document_can_be_switched_off(make_orc: MakeOrc) -> None:
    app = create_app(orchestrator=make_orc(api={"docs": False}))
    for response in get(app, "/docs", "/openapi.json", "/redoc", "/docs/swagger-ui.css"):
        assert response.status_code == 404
