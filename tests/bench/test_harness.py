"""`make bench`'s harness: a smoke run with tiny durations, and the pieces that turn output into figures."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench import loadgen, report, wrk

REPO = Path(__file__).resolve().parents[2]

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:1/partner/referrals/x
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.10ms    3.20ms  40.00ms   80.00%
  Latency Distribution
     50%   11.50ms
     75%   13.00ms
     90%   15.00ms
     99%    1.20s
  2400 requests in 8.00s, 1.20MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    300.12
Transfer/sec:    150.00KB
"""


def test_wrk_output_is_read_with_its_units() -> None:
    out = wrk.parse(WRK_OUTPUT)
    assert out == {
        "requests": 2400,
        "rps": 300.12,
        "p50_ms": 11.5,
        "p99_ms": 1200.0,
        "non_2xx": 3,
        "errors": 0,
    }
    with pytest.raises(ValueError):
        wrk.parse("garbage")


def test_percentiles_are_nearest_rank() -> None:
    result = loadgen.Result(latencies=[i / 1000 for i in range(1, 101)], elapsed=2.0)
    assert result.percentile(50) == 0.05
    assert result.percentile(99) == 0.099
    assert result.summary()["rps"] == 50.0


def test_loadgen_counts_statuses_against_a_real_server() -> None:
    async def scenario() -> loadgen.Result:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:

            def make(_n: int) -> bytes:
                return loadgen.build_request("GET", "/", f"127.0.0.1:{port}")

            return await loadgen.fixed_rate("127.0.0.1", port, make, rate=100, duration=0.3)

    result = asyncio.run(scenario())
    assert result.statuses == {404: 30} and result.errors == 0


def test_verdicts_compare_measured_to_goal() -> None:
    rows = [
        {"server": "sandbox", "db": "sqlite", "workers": 1, "endpoint": "get", "rps": 600.0},
        {"server": "bare_starlette", "db": "sqlite", "workers": 1, "endpoint": "get", "rps": 1000.0},
        {"server": "prism_mock", "db": "none", "workers": 1, "endpoint": "get", "rps": 800.0},
    ]
    lines = {v["target"]: v for v in report.verdicts({"http": rows})}
    bare = lines["GET /partner/referrals/{id} vs bare Starlette (sqlite, 1w)"]
    prism = lines["GET /partner/referrals/{id} vs Prism -v error (sqlite, 1w)"]
    assert (bare["measured"], bare["met"]) == (0.6, True)
    assert (prism["measured"], prism["met"]) == (0.75, False)


def test_readme_table_is_replaced_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Bench\n\nintro\n\n{report.START}\nold table\n{report.END}\n\nafter\n")
    report.update_readme(readme, "| new |")
    text = readme.read_text()
    assert "old table" not in text and "| new |" in text and text.endswith("after\n")


@pytest.mark.slow
def test_quick_run_writes_results_and_table(tmp_path: Path) -> None:
    """The whole harness end to end at tiny sizes: real servers, real load, real webhook deliveries."""
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n")
    parts = "http,webhooks"
    pg = os.environ.get("STEALTH_TEST_POSTGRES_URL")
    prefix = f"stealth_bench_t{uuid.uuid4().hex[:8]}"
    if pg:
        parts += ",growth"
    cmd = [
        sys.executable, "-m", "bench.run", "--quick", "--parts", parts, "--db", "sqlite", "--workers", "1",
        "--generator", "asyncio", "--no-prism", "--out-dir", str(tmp_path / "results"),
        "--work-dir", str(tmp_path / "work"), "--readme", str(readme), "--db-prefix", prefix,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_POSTGRES_URL": pg or ""}
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        if pg:
            from bench.dbsetup import drop_pg_database

            for size in (200, 2000):
                drop_pg_database(pg, f"{prefix}_growth_{size}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [path] = (tmp_path / "results").glob("*.json")
    result = json.loads(path.read_text())
    assert result["quick"] is True and result["machine"]["cores"] and result["versions"]["connexion"]
    http = {(r["server"], r["endpoint"]): r for r in result["http"]}
    for key in [
        (s, e) for s in ("sandbox", "sandbox_no_response_validation") for e in ("get", "list", "post")
    ] + [
        ("bare_starlette", "get"),
        ("sandbox", "get@fixed_rate"),
    ]:
        row = http[key]
        assert row["requests"] > 0 and row["errors"] == 0, row
        assert set(row["statuses"]) <= {"200", "201"}, row  # authenticated, found, created: no errors
    [hooks] = result["webhooks"]
    assert hooks["backlog_deliveries"] == hooks["backlog"] and hooks["undelivered_at_end"] == 0
    assert hooks["latency_deliveries"] > 0 and hooks["deliveries_per_s"] > 0
    if pg:
        sizes = [g["size"] for g in result["growth"]]
        assert sizes == [200, 2000] and all(g["list_deep"]["p99_ms"] > 0 for g in result["growth"])
    assert any(v["target"].startswith("GET /partner/referrals/{id} vs bare") for v in result["verdicts"])
    assert report.START in readme.read_text() and "| sandbox | sqlite | 1 | get |" in readme.read_text()


def test_profile_summary_shares_are_inclusive_and_own(tmp_path: Path) -> None:
    from bench.profile import summarize

    raw = tmp_path / "raw.txt"
    raw.write_text(
        "main (a.py:1);Runner.run (asyncio/runners.py:10) 30\n"
        "run (t.py:1);ReferralHandlers.get_referral (h.py:5);Session._execute_internal (s.py:9) 60\n"
        "run (t.py:1);ReferralHandlers.get_referral (h.py:6) 10\n"
    )
    text = summarize(raw)
    assert "100 samples" in text
    assert " 70.0%  ReferralHandlers.get_referral (h.py)" in text  # two lines of one frame, merged
    assert " 60.0%  Session._execute_internal (s.py)" in text and " 30.0%  Runner.run" in text
