"""The run's JSON and the measured / target table in bench/README.md."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import wrk
from bench.procs import REPO

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"

TARGETS = {
    "get_vs_bare": 0.5,
    "get_vs_prism": 1.0,
    "p99_at_200": 25.0,
    "dispatch_rate": 1000.0,
    "dispatch_p99": 100.0,
    "list_growth": 1.5,
    "list_p99_1m": 10.0,
    "summary_1m": 100.0,
    "generate": 10.0,
    "conformance": 180.0,
}


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "loadavg_at_start": list(os.getloadavg()),
        "note": "shared with other jobs: compare ratios taken within this run, not absolute figures",
    }


def _cmd_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def versions(pg_url: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("connexion", "starlette", "uvicorn", "SQLAlchemy", "psycopg", "jsonschema-rs", "pydantic"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["prism"] = _cmd_version([str(REPO / "node_modules" / ".bin" / "prism"), "--version"])
    out["node"] = _cmd_version(["node", "--version"])
    out["wrk"] = wrk.version()
    if pg_url:
        import psycopg

        from bench.dbsetup import plain

        with psycopg.connect(plain(pg_url)) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            out["postgresql"] = row[0] if row else None
    return out


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per target: what was measured, the target, met or not."""
    lines: list[dict[str, Any]] = []
    http = result.get("http") or []

    def add(name: str, measured: float | None, target: float, higher_is_better: bool, note: str = "") -> None:
        if measured is None or measured != measured:  # None or NaN
            lines.append({"target": name, "measured": None, "goal": target, "met": None, "note": note})
            return
        met = measured >= target if higher_is_better else measured <= target
        lines.append(
            {"target": name, "measured": round(measured, 2), "goal": target, "met": met, "note": note}
        )

    for db in ("sqlite", "postgresql"):
        for n in (1, 2):
            prism = {
                e: _find(http, server="prism_mock", db=db, workers=n, endpoint=e)
                or _find(http, server="prism_mock", endpoint=e)
                for e in ("get", "list", "post")
            }
            sb = _find(http, server="sandbox", db=db, workers=n, endpoint="get")
            bare = _find(http, server="bare_starlette", db=db, workers=n, endpoint="get")
            if sb and bare:
                add(
                    f"GET /partner/referrals/{{id}} vs bare Starlette ({db}, {n}w)",
                    sb["rps"] / bare["rps"],
                    TARGETS["get_vs_bare"],
                    True,
                    f"{sb['rps']:.0f} / {bare['rps']:.0f} req/s",
                )
            for endpoint in ("get", "list"):
                sb_e = _find(http, server="sandbox", db=db, workers=n, endpoint=endpoint)
                pr = prism[endpoint]
                if sb_e and pr:
                    label = "/partner/referrals/{id}" if endpoint == "get" else "/partner/referrals?limit=50"
                    add(
                        f"GET {label} vs Prism -v error ({db}, {n}w)",
                        sb_e["rps"] / pr["rps"],
                        TARGETS["get_vs_prism"],
                        True,
                        f"{sb_e['rps']:.0f} / {pr['rps']:.0f} req/s",
                    )
            fixed = _find(http, server="sandbox", db=db, workers=n, endpoint="get@fixed_rate")
            if fixed:
                add(
                    f"GET p99 ms at {fixed['offered_rps']:g} req/s ({db}, {n}w)",
                    fixed["p99_ms"],
                    TARGETS["p99_at_200"],
                    False,
                    f"p50 {fixed['p50_ms']} ms",
                )
    for row in result.get("webhooks") or []:
        add(
            f"dispatch deliveries/s ({row['db']}, {row['workers']}w)",
            row["deliveries_per_s"],
            TARGETS["dispatch_rate"],
            True,
            f"backlog {row['backlog']}, worker batch {row.get('worker_batch', 50)}",
        )
        add(
            f"dispatch p99 ms state change to receipt ({row['db']}, {row['workers']}w)",
            row["p99_ms"],
            TARGETS["dispatch_p99"],
            False,
            f"at {row['achieved_rate']}/s of state changes, p50 {row['p50_ms']} ms",
        )
    growth = sorted(result.get("growth") or [], key=lambda r: r["size"])
    if len(growth) >= 2:
        small, big = growth[0], growth[-1]
        for label in ("first", "middle", "deep"):
            add(
                f"list page ({label}) p50 at {big['size']:,} / at {small['size']:,}",
                big[f"list_{label}"]["p50_ms"] / small[f"list_{label}"]["p50_ms"],
                TARGETS["list_growth"],
                False,
                f"{big[f'list_{label}']['p50_ms']} / {small[f'list_{label}']['p50_ms']} ms",
            )
        worst = max(("first", "middle", "deep"), key=lambda label: big[f"list_{label}"]["p99_ms"])
        add(
            f"list page p99 ms at {big['size']:,} (worst of first, middle, deep: {worst})",
            big[f"list_{worst}"]["p99_ms"],
            TARGETS["list_p99_1m"],
            False,
            "server-side, "
            + ", ".join(f"{k} {big[f'list_{k}']['p99_ms']}" for k in ("first", "middle", "deep")),
        )
        add(
            f"summary (month) p50 ms at {big['size']:,}",
            big["summary_month"]["p50_ms"],
            TARGETS["summary_1m"],
            False,
            f"all_time: {big['summary_all_time']['p50_ms']} ms",
        )
    tooling = result.get("tooling") or {}
    if "generate" in tooling:
        add(
            "make generate s (after a spec change)",
            tooling["generate"]["cold"]["seconds"],
            TARGETS["generate"],
            False,
            f"warm {tooling['generate']['warm']['seconds']} s",
        )
    if "conformance" in tooling:
        add(
            "make conformance s (full)",
            tooling["conformance"]["seconds"],
            TARGETS["conformance"],
            False,
            f"exit {tooling['conformance']['exit']}",
        )
    return lines


def write_json(result: dict[str, Any], out_dir: Path, stamp: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def markdown(result: dict[str, Any], json_name: str) -> str:
    lines = [
        f"Run `{result['started_at']}` (`{json_name}`), {result['machine']['cores']} cores "
        f"({result['machine']['cpu'] or 'unknown CPU'}), load average at start "
        f"{', '.join(f'{x:.2f}' for x in result['machine']['loadavg_at_start'])}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v) + ".",
        "",
        f"Command: `{result['command']}`; load generator: {result['load_generator']}.",
        "",
        "| target | measured / goal | met | note |",
        "| --- | --- | --- | --- |",
    ]
    for v in result["verdicts"]:
        met = {True: "yes", False: "**no**", None: "-"}[v["met"]]
        lines.append(f"| {v['target']} | {_fmt(v['measured'])} / {v['goal']:g} | {met} | {v['note']} |")
    http = result.get("http") or []
    if http:
        lines += [
            "",
            "| server | db | workers | endpoint | req/s | p50 ms | p99 ms | non-2xx | generator |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in http:
            bad = r.get(
                "non_2xx", sum(v for k, v in (r.get("statuses") or {}).items() if not k.startswith("2"))
            )
            lines.append(
                f"| {r['server']} | {r['db']} | {r['workers']} | {r['endpoint']} | {r['rps']:.0f} | {r['p50_ms']} | "
                f"{r['p99_ms']} | {bad} | {r['generator']} |"
            )
    hooks = result.get("webhooks") or []
    if hooks:
        lines += [
            "",
            "| dispatch db | workers | batch | backlog | deliveries/s | latency run rate/s | p50 ms | p99 ms |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in hooks:
            lines.append(
                f"| {r['db']} | {r['workers']} | {r.get('worker_batch', 50)} | {r['backlog']} | "
                f"{r['deliveries_per_s']} | {r['achieved_rate']} | "
                f"{r['p50_ms']} | {r['p99_ms']} |"
            )
    growth = result.get("growth") or []
    if growth:
        lines += [
            "",
            "| referrals | list first p50/p99 ms | list middle p50/p99 | list deep p50/p99 | summary month p50/p99 | summary all_time p50 |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in growth:
            cells = [
                f"{r[k]['p50_ms']} / {r[k]['p99_ms']}"
                for k in ("list_first", "list_middle", "list_deep", "summary_month")
            ]
            lines.append(
                f"| {r['size']:,} | " + " | ".join(cells) + f" | {r['summary_all_time']['p50_ms']} |"
            )
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> None:
    text = readme.read_text()
    block = f"{START}\n{table}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)
