"""Bad input against a real server process: oversized bodies get 413 PAYLOAD_TOO_LARGE (declared or chunked,
without the server reading them), `limit` above 200 gets 400 on every operation that pages, and deep or huge
JSON is refused in the error envelope on every operation with a body, without exhausting memory (peak RSS
of the server process measured from /proc)."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator

import httpx

from stealth_spec import walk
from tests.conftest import bundled
from tests.server.reliability.procs import Server, Store, headers, record, rss_kib

MAX_BODY = 65536
RSS_GROWTH_LIMIT_KIB = 64 * 1024


def _operations() -> list[tuple[str, str, set[str], bool, str]]:
    """(method, path, parameter names, has a body, tier to call it with) of every operation of the bundle."""
    doc = bundled("partner")
    out = []
    for op in walk.operations(doc):
        if op.is_webhook:
            continue
        tiers = op.tiers()
        tier = "prescriber" if tiers == {"prescriber"} else "clinical"
        names = {p.get("name") for p in op.parameters(doc)}
        out.append((op.method.upper(), op.key, names, bool(op.op.get("requestBody")), tier))
    return out


def _concrete(path: str) -> str:
    return path.replace("{", "x_").replace("}", "")  # any id: validation runs before the lookup


def _chunks(total: int, size: int = 65536) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"[" * min(size, total - sent)
        sent += size


def _envelope(r: httpx.Response) -> str:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return str(body["error"]["code"])


def test_bad_input_is_refused_without_exhausting_memory(live: Callable[..., tuple[Server, Store]]) -> None:
    server, store = live()
    callers = {tier: headers(store.partner(tier)) for tier in ("clinical", "prescriber")}
    _, peak_before = rss_kib(server.pid)
    codes: collections.Counter[str] = collections.Counter()
    with httpx.Client(base_url=server.base_url, headers=callers["clinical"], timeout=60) as client:
        # declared too large: refused from the headers alone
        big = b'{"partner_reference": "' + b"a" * (MAX_BODY + 10) + b'"}'
        r = client.post("/partner/referrals", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and _envelope(r) == "PAYLOAD_TOO_LARGE"
        # 50 MB chunked (no Content-Length): refused once 64 KiB have been read
        r = client.post(
            "/partner/referrals",
            content=_chunks(50 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 413 and _envelope(r) == "PAYLOAD_TOO_LARGE"

        limit_ops = 0
        deep_ops = 0
        deep_bodies = {
            "deep array": b"[" * 32000 + b"]" * 32000,
            "deep object": b'{"a":' * 10000 + b"1" + b"}" * 10000,
            "huge number": b'{"partner_reference": ' + b"9" * 60000 + b"}",
            "huge exponent": b'{"quantity": 1e999999}',
            "many keys": b"{" + b",".join(b'"k%d":1' % i for i in range(7000)) + b"}",
            "unterminated": b'{"a": [' * 1000,
            "invalid utf-8": b'{"partner_reference": "\xff\xfe"}',
        }
        for method, path, names, has_body, tier in _operations():
            if method == "GET" and "limit" in names:
                limit_ops += 1
                r = client.get(_concrete(path), params={"limit": 201}, headers=callers[tier])
                assert r.status_code == 400, (path, r.status_code, r.text)
                codes[_envelope(r)] += 1
            if has_body:
                deep_ops += 1
                for name, body in deep_bodies.items():
                    r = client.request(
                        method,
                        _concrete(path),
                        content=body,
                        headers={**callers[tier], "Content-Type": "application/json"},
                    )
                    assert 400 <= r.status_code < 500, (method, path, name, r.status_code, r.text[:300])
                    codes[_envelope(r)] += 1
        assert client.get("/healthz").status_code == 200
    rss_after, peak_after = rss_kib(server.pid)
    log = server.log_text()
    assert "unhandled error" not in log and "INTERNAL_ERROR" not in log
    assert limit_ops >= 5 and deep_ops >= 10
    growth = peak_after - peak_before
    record(
        "bad input",
        operations_with_limit=limit_ops,
        operations_with_body=deep_ops,
        bad_bodies_each=len(deep_bodies),
        codes=dict(sorted(codes.items())),
        peak_rss_before_mib=round(peak_before / 1024, 1),
        peak_rss_after_mib=round(peak_after / 1024, 1),
        rss_after_mib=round(rss_after / 1024, 1),
    )
    assert growth < RSS_GROWTH_LIMIT_KIB, f"peak RSS grew by {growth} KiB"
