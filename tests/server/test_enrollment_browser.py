"""The enrollment page works in a real browser: headless Chromium fills it in and pays, against `stealth serve`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from conformance.local import free_port, sandbox, stealth
from tests.portal.test_portal_browser import ensure_chromium

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("enroll_browser.mjs")

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def _fill_in(url: str, card: str, chromium: Path, screenshot: Path) -> dict:
    config = {"url": url, "chromium": str(chromium), "card": card, "screenshot": str(screenshot)}
    res = subprocess.run(
        ["node", str(SCRIPT), json.dumps(config)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_patient_enrolls_and_pays_in_a_browser():
    chromium = ensure_chromium()
    shots = REPO / "build" / "enrollment-screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stealth-enroll-") as tmp:
        env = {
            **os.environ,
            "STEALTH_STATE_DIR": str(Path(tmp) / ".stealth"),
            "STEALTH_DATABASE_URL": f"sqlite:///{Path(tmp) / 'sandbox.db'}",
            "STEALTH_ENVIRONMENT": "sandbox",
            "STEALTH_AUTO_ADVANCE_SECONDS": "0",
        }
        env.pop("STEALTH_REDIS_URL", None)
        partner = stealth(env, "partner", "create", "--tier", "referral", "--name", "Browser Health")
        port = free_port()
        env["STEALTH_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        with sandbox(env, port, Path(tmp) / "serve.log") as base:
            headers = {"X-Partner-ID": partner["partner_id"], "X-Api-Key": partner["api_key"]}
            created = httpx.post(
                f"{base}/partner/referrals",
                headers=headers,
                json={"partner_reference": "browser-001", "product_category": "trt-cream"},
            ).json()
            url = created["enrollment_url"]
            assert url.startswith(base)

            declined = _fill_in(url, "4000 0000 0000 0002", chromium, shots / "declined.png")
            # The decline page answers 402 (the browser logs the document's own status); nothing else may fail.
            assert [e for e in declined["consoleErrors"] if "status of 402" not in e] == []
            assert "declined" in declined["text"].lower()
            got = httpx.get(f"{base}/partner/referrals/{created['referral_id']}", headers=headers).json()
            assert got["status"] == "created"  # a declined card changes nothing

            paid = _fill_in(url, "4242 4242 4242 4242", chromium, shots / "paid.png")
            assert paid["status"] == 200 and paid["consoleErrors"] == []
            assert "Browser Health" in paid["text"]  # co-branded
            got = httpx.get(f"{base}/partner/referrals/{created['referral_id']}", headers=headers).json()
            assert got["status"] == "pending_review"
            assert got["payment"]["status"] == "paid"
            assert [h["status"] for h in got["status_history"]] == ["created", "enrolled", "pending_review"]
