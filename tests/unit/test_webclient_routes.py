"""The call page's routes: the page at / and at every room link, its modules under /static,
with a Content-Security-Policy that allows only the page's own origin."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from jbcalling.signaling import webclient

pytestmark = pytest.mark.unit


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    webclient.install(app)
    return TestClient(app)


def test_the_page_is_served_at_the_root_and_at_room_links(client: TestClient) -> None:
    for path in ("/", "/r/AAAAAAAAAAAAAAAAAAAAAA"):
        resp = client.get(path)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/static/app.js">' in resp.text
        csp = resp.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_every_module_the_page_imports_is_served(client: TestClient) -> None:
    seen, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        resp = client.get(f"/static/{name}")
        assert resp.status_code == 200, name
        assert "javascript" in resp.headers["content-type"], name
        seen.add(name)
        todo += [m for m in re.findall(r'from "\./([\w-]+\.js)"', resp.text) if m not in seen]
    page = client.get("/").text
    preloaded = set(re.findall(r'modulepreload" href="/static/([\w-]+\.js)"', page))
    assert preloaded | {"app.js"} == seen  # every module preloaded, none missing
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/nothing.js").status_code == 404
