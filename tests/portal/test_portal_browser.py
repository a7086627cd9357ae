"""The portal in a real browser: every page loads in headless Chromium with no console error and no request to
any host but the local server; every operation and webhook of each reference page's bundle is listed by the
renderer (and the last operation and first webhook, opened from its sidebar, show their operationId and event
name in the rendered content); every lifecycle
diagram renders as SVG with all its states. A screenshot of every page is kept under build/portal-screenshots/.

Chromium is Debian's (/usr/bin/chromium), installed with apt-get when missing; the test is skipped, loudly,
only when it is missing and cannot be installed (no apt-get or not root). The portal is served under /docs/,
as ``stealth serve`` mounts it, to prove that its links are relative.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from portal import build as portal_build

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = Path(__file__).with_name("browser_check.mjs")
SCREENSHOTS = REPO / "build" / "portal-screenshots"


def ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if not apt or os.geteuid() != 0:
        pytest.skip(
            f"SKIPPED LOUDLY: {CHROMIUM} is missing and cannot be installed here "
            f"(apt-get {'found' if apt else 'not found'}, uid {os.geteuid()}); "
            "run `apt-get install -y chromium` as root to run the portal browser test"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    assert CHROMIUM.exists(), "chromium installed but /usr/bin/chromium is missing"
    return CHROMIUM


class _DocsHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the portal directory under /docs/ only (like `stealth serve`); anything else is a 404."""

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if not clean.startswith("/docs/"):
            return str(Path(self.directory) / "__outside_docs__")
        return super().translate_path(clean[len("/docs") :])

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def browser_results(tmp_path_factory) -> dict[str, Any]:
    chromium = ensure_chromium()
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not installed: it runs the playwright-core browser script")
    if not (REPO / "node_modules" / "playwright-core").is_dir():
        pytest.fail("node_modules/playwright-core is missing: run `npm ci`")

    out = tmp_path_factory.mktemp("portal") / "portal"
    bundle_dir = out.parent / "no-bundles"  # the spec as it is now, bundled by the builder
    manifest = portal_build.build(out, bundle_dir, REPO / "spec", REPO / "node_modules")

    handler = functools.partial(_DocsHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    config = {
        "baseUrl": f"http://127.0.0.1:{server.server_address[1]}/docs/",
        "chromium": str(chromium),
        "screenshotDir": str(SCREENSHOTS),
        "pages": manifest["pages"],
        "concurrency": 2,
    }
    config_file = out.parent / "browser-config.json"
    config_file.write_text(json.dumps(config))
    try:
        res = subprocess.run(
            [node, str(SCRIPT), str(config_file)], cwd=REPO, capture_output=True, text=True, timeout=900
        )
    finally:
        server.shutdown()
        server.server_close()
    if res.returncode != 0:
        pytest.fail(f"browser script failed ({res.returncode}):\n{res.stderr[-4000:]}")
    results = json.loads(res.stdout)["results"]
    (SCREENSHOTS / "results.json").write_text(json.dumps(results, indent=1))
    summary = [f"{r['path']}: {r['ms']} ms, {r['requestCount']} requests" for r in results]
    print("\n".join(summary), file=sys.stderr)
    return {"manifest": manifest, "results": results}


def _problems(results: list[dict[str, Any]], key: str) -> list[str]:
    return [f"{r['path']}: {item}" for r in results for item in r.get(key) or []]


def test_portal_in_a_real_browser(browser_results):
    """One test (the browser run is expensive and must not be repeated per xdist worker); every check is
    collected, so a failure lists all the problems at once."""
    results = browser_results["results"]
    problems: dict[str, list[str]] = {}

    # Every page of the manifest was loaded without a script error.
    loaded = {r["path"] for r in results}
    expected = {p["path"] for p in browser_results["manifest"]["pages"]}
    problems["pages not loaded"] = sorted(expected - loaded)
    problems["page errors"] = _problems(results, "errors")
    if not any(p.startswith("reference/") for p in loaded) or not any(
        p.startswith("guides/") for p in loaded
    ):
        problems["page errors"].append("no reference page or no guide page was built")

    # Zero requests to any host but the local server; no console error; nothing failed to load.
    problems["requests to other hosts"] = _problems(results, "foreign")
    problems["console errors"] = _problems(results, "consoleErrors")
    problems["failed requests"] = _problems(results, "failed")

    # Every operation and webhook of each reference page's bundle is rendered, with generated samples.
    refs = [r for r in results if r["kind"] == "reference"]
    problems["reference pages"] = [] if refs else ["no reference page"]
    for r in refs:
        if r.get("operationsChecked", 0) + r.get("webhooksChecked", 0) == 0:
            problems["reference pages"].append(f"{r['path']}: nothing checked")
        problems["reference pages"] += [
            f"{r['path']}: operation {m} missing" for m in r.get("missingOperations", [])
        ]
        problems["reference pages"] += [
            f"{r['path']}: webhook {m} missing" for m in r.get("missingWebhooks", [])
        ]
        for spot in r.get("spotChecks") or []:
            if not spot["ok"]:
                problems["reference pages"].append(
                    f"{r['path']}: {spot['label']} did not render {spot['expect']}"
                )
        if not r.get("codeSamples"):
            problems["reference pages"].append(f"{r['path']}: no generated code sample visible")
        shot = Path(r.get("screenshot") or "/nonexistent")
        if not shot.is_file() or shot.stat().st_size < 10_000:
            problems["reference pages"].append(f"{r['path']}: no screenshot")

    # Lifecycle diagrams render as SVG with every state; the referral sequence renders with its webhooks.
    problems["diagrams"] = []
    lifecycle_page = next((r for r in results if r["path"] == "guides/lifecycles.html"), None)
    if not lifecycle_page or not lifecycle_page.get("diagrams"):
        problems["diagrams"].append("no lifecycle diagram on guides/lifecycles.html")
    for r in results:
        for d in r.get("diagrams") or []:
            if not d["svg"]:
                problems["diagrams"].append(f"{r['path']}: {d['name']} not rendered")
            if d["missingStates"]:
                problems["diagrams"].append(f"{r['path']}: {d['name']} lacks states {d['missingStates']}")
        seq = r.get("sequence")
        if seq is not None and not (seq["svg"] and seq["hasWebhook"]):
            problems["diagrams"].append(f"{r['path']}: referral sequence not rendered")

    failing = {k: v for k, v in problems.items() if v}
    assert not failing, json.dumps(failing, indent=1)
