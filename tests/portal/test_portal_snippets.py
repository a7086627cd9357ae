"""The code partners copy from the guides and the reference works as printed.

- Every Python block of every guide compiles; every JavaScript block parses (``node --check``).
- The webhook verifiers of the webhooks guide (Python and Node.js) accept what the sandbox's signer produces and
  reject tampered bodies, wrong and missing signatures; the quickstart receiver does the same over HTTP.
- The generated samples of createReferral and getReferral (curl, Python httpx, Node.js fetch) succeed against a
  real local sandbox (``stealth serve``), skipped only when the sandbox cannot start here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from portal import build as portal_build
from portal import samples

REPO = Path(__file__).resolve().parents[2]
GUIDES = REPO / "portal" / "guides"
SECRET = "whsec_GghpuJEOJ5zP/tdx7xq5bTDimG2kz37gIwsKLiwv8/I="
BODY = b'{"event_id": "evt_0123456789abcdef01234567", "event_type": "referral.approved", "data": {"x": "\\u00e9"}}'


def sign(secret: str, body: bytes) -> str:
    try:
        from server.webhooks.signing import stealth_signature
    except Exception:  # the sandbox is optional here: the contract is HMAC-SHA256(secret, raw body)
        return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return stealth_signature(secret, body)


def blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for md in sorted(GUIDES.glob("*.md")):
        for m in re.finditer(rf"^```{lang}\n(.*?)^```", md.read_text(), re.S | re.M):
            out.append((md.name, m.group(1)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_python_block_compiles():
    found = blocks("python")
    assert found
    for name, code in found:
        compile(code.replace("{{ pharmacy_event_id_header }}", "X-Pharmacy-Event-Id"), name, "exec")


def test_every_javascript_block_parses(tmp_path):
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    for i, (name, code) in enumerate(blocks("javascript")):
        f = tmp_path / f"{i}-{name}.mjs"
        f.write_text(re.sub(r"\{\{\s*\w+\s*\}\}", "X-Header", code))
        res = subprocess.run([node, "--check", str(f)], capture_output=True, text=True)
        assert res.returncode == 0, (name, code[:200], res.stderr)


def test_python_verifier_of_the_webhooks_guide(monkeypatch):
    code = next(c for n, c in blocks("python") if n == "webhooks.md" and "def verify_signature" in c)
    monkeypatch.setenv("STEALTH_WEBHOOK_SECRET", SECRET)
    ns: dict[str, Any] = {}
    exec(code, ns)
    verify = ns["verify_signature"]
    good = sign(SECRET, BODY)
    assert verify(BODY, good) is True
    assert verify(BODY + b" ", good) is False
    assert verify(BODY, "sha256=" + "0" * 64) is False
    assert verify(BODY, good.replace("sha256=", "")) is False
    assert verify(BODY, None) is False
    assert "compare_digest" in code


def test_node_verifier_of_the_webhooks_guide(tmp_path):
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    code = next(c for n, c in blocks("javascript") if n == "webhooks.md" and "function verifySignature" in c)
    fn = re.search(r"^function verifySignature.*?^\}", code, re.S | re.M).group(0)
    good = sign(SECRET, BODY)
    script = (
        'import crypto from "node:crypto";\n'
        f"const WEBHOOK_SECRET = {json.dumps(SECRET)};\n{fn}\n"
        f"const body = Buffer.from({json.dumps(BODY.decode())}, 'utf8');\n"
        f"const good = {json.dumps(good)};\n"
        "console.log(JSON.stringify([verifySignature(body, good), verifySignature(Buffer.concat([body, Buffer.from(' ')]), good),"
        " verifySignature(body, 'sha256=' + '0'.repeat(64)), verifySignature(body, 'sha256=abc'),"
        " verifySignature(body, undefined), verifySignature(body, good.slice(7))]));\n"
    )
    f = tmp_path / "verify.mjs"
    f.write_text(script)
    res = subprocess.run([node, str(f)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [True, False, False, False, False, False]
    assert "timingSafeEqual" in fn


def test_quickstart_receiver_verifies_over_http(tmp_path):
    code = next(c for n, c in blocks("python") if n == "quickstart.md" and "HTTPServer" in c)
    port = free_port()
    f = tmp_path / "receiver.py"
    f.write_text(code.replace('("127.0.0.1", 3000)', f'("127.0.0.1", {port})'))
    proc = subprocess.Popen(
        [sys.executable, str(f)],
        env={**os.environ, "STEALTH_WEBHOOK_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def post(body: bytes, sig: str | None) -> int:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks",
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", **({"X-Stealth-Signature": sig} if sig else {})},
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        good = sign(SECRET, BODY)
        assert post(BODY, good) == 200
        assert post(BODY, good) == 200  # duplicate: acknowledged again
        assert post(BODY + b" ", good) == 401
        assert post(BODY, None) == 401
    finally:
        proc.terminate()
        out, _err = proc.communicate(timeout=5)
    assert "referral.approved" in out and "duplicate referral.approved" in out


# ---------------------------------------------------------------------------------------- live sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    stealth = Path(sys.executable).with_name("stealth")
    if not stealth.exists():
        pytest.skip("the `stealth` console script is not installed")
    work = tmp_path_factory.mktemp("sandbox")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEALTH_")}
    proc = subprocess.Popen(
        [str(stealth), "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            if proc.poll() is not None:
                pytest.skip(f"the sandbox exited at start: {proc.stdout.read()[-1500:]}")
            try:
                urllib.request.urlopen(base + "/openapi.json", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.skip("the sandbox did not answer within 30 s")
        partners = json.loads((work / ".stealth" / "demo-partners.json").read_text())
        yield base, partners
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _referral_creds(partners: Any) -> tuple[str, str]:
    items = (
        partners
        if isinstance(partners, list)
        else list(partners.values())
        if isinstance(partners, dict)
        else []
    )
    if isinstance(partners, dict) and "referral" in partners and isinstance(partners["referral"], dict):
        items = [partners["referral"]]
    for p in items:
        if isinstance(p, dict) and p.get("tier", "referral") == "referral" and p.get("partner_id"):
            return p["partner_id"], p["api_key"]
    pytest.skip(f"no referral partner in demo-partners.json: {str(partners)[:300]}")


def _run(lang: str, source: str, env: dict[str, str], base: str, tmp_path: Path) -> str:
    if lang == "curl":
        res = subprocess.run(
            ["bash", "-c", source.replace(samples.BASE_URL, base)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    elif lang.startswith("Python"):
        res = subprocess.run(
            [sys.executable, "-c", source], env=env, capture_output=True, text=True, timeout=30
        )
    else:
        node = shutil.which("node")
        if not node:
            pytest.skip("node is not installed")
        f = tmp_path / "sample.mjs"
        f.write_text(source)
        res = subprocess.run([node, str(f)], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, (lang, res.stderr[-1000:])
    return res.stdout


def test_generated_samples_work_against_the_local_sandbox(sandbox, tmp_path):
    base, partners = sandbox
    partner_id, api_key = _referral_creds(partners)
    docs, _ = portal_build.load_bundles(tmp_path / "none", REPO / "spec")
    doc = docs["partner-api.referral"]
    env = {
        **os.environ,
        "STEALTH_BASE_URL": base,
        "STEALTH_PARTNER_ID": partner_id,
        "STEALTH_API_KEY": api_key,
    }
    create = doc["paths"]["/partner/referrals"]["post"]
    referral_id = None
    for s in samples.samples_for(doc, "post", "/partner/referrals", create, "referral"):
        out = _run(s["label"], s["source"], env, base, tmp_path)
        if s["label"] != "curl":
            assert re.match(r"20[01] ", out), (s["label"], out[:300])
        referral_id = re.search(r'"referral_id": ?"(ref_[A-Za-z0-9]+)"', out).group(1)
    env["REFERRAL_ID"] = referral_id
    get = doc["paths"]["/partner/referrals/{referral_id}"]["get"]
    for s in samples.samples_for(doc, "get", "/partner/referrals/{referral_id}", get, "referral"):
        out = _run(s["label"], s["source"], env, base, tmp_path)
        if s["label"] != "curl":
            assert out.startswith("200 "), (s["label"], out[:300])
        assert referral_id in out
