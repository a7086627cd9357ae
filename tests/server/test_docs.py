"""The developer portal is served at /docs from the built directory, and nothing outside it."""

from __future__ import annotations

from pathlib import Path


def _portal(tmp_path: Path) -> Path:
    root = tmp_path / "portal"
    (root / "guides").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>Stealth Health developer portal</title>")
    (root / "guides" / "webhooks.html").write_text("<h1>Webhooks</h1>")
    (tmp_path / "secret.txt").write_text("outside the portal")
    return root


def test_docs_serves_the_built_portal(sandbox_factory, tmp_path):
    app = sandbox_factory(portal_dir=_portal(tmp_path))
    r = app.client.get("/docs", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/docs/"
    r = app.client.get("/docs/")
    assert r.status_code == 200 and "developer portal" in r.text
    assert r.headers["content-type"].startswith("text/html")
    r = app.client.get("/docs/guides/webhooks.html")
    assert r.status_code == 200 and "<h1>Webhooks</h1>" in r.text
    assert app.client.get("/docs/guides/").status_code == 404  # a directory without index.html


def test_docs_never_serves_files_outside_the_portal(sandbox_factory, tmp_path):
    app = sandbox_factory(portal_dir=_portal(tmp_path))
    for path in ("/docs/../secret.txt", "/docs/%2e%2e/secret.txt", "/docs/guides/../../secret.txt"):
        r = app.client.get(path)
        assert "outside the portal" not in r.text, path
        assert r.status_code in (404, 400), (path, r.status_code)


def test_docs_says_how_to_build_when_missing(sandbox_factory, tmp_path):
    app = sandbox_factory(portal_dir=tmp_path / "not-built")
    r = app.client.get("/docs/")
    assert r.status_code == 503 and "make portal" in r.text


def test_every_operation_of_the_spec_has_a_handler(sandbox, spec_document):
    """The resolver refuses an operation without a handler at start-up; this names any that lack one."""
    from server.handlers import build_registry
    from stealth_spec import walk

    registry = build_registry(sandbox.state)
    missing = [
        op.op["operationId"]
        for op in walk.operations(spec_document)
        if not op.is_webhook and op.op["operationId"] not in registry
    ]
    assert missing == []
    assert len(registry) >= 34
