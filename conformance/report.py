"""Per-requirement verdicts and the artifacts: terminal summary, JSON, JUnit XML, self-contained HTML.

Every artifact goes through the Redactor: no x-phi property value and no secret is written anywhere.
"""

from __future__ import annotations

import html
import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from .checks import REGISTRY, CheckResult, Status
from .redact import Redactor

CATALOG_PATH = Path(__file__).with_name("requirements.yaml")
EXIT_OK, EXIT_FAIL, EXIT_SKIP, EXIT_CONFIG = 0, 1, 2, 3


def load_catalog(path: Path = CATALOG_PATH) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(data["requirements"])


@dataclass
class RequirementVerdict:
    req: dict[str, Any]
    status: str  # pass | fail | skip | omit | manual
    checks: list[str]
    reasons: list[str] = field(default_factory=list)


def checks_for(req: dict[str, Any]) -> list[str]:
    ids = list(req.get("verified_by") or [])
    for chk in REGISTRY.values():
        if req["id"] in chk.requirements and chk.id not in ids:
            ids.append(chk.id)
    return ids


def _scoped(
    req: dict[str, Any],
    res: CheckResult,
    operations_in_run: set[str] | None,
    touched: dict[str, set[str]] | None,
) -> tuple[Status, str]:
    """The status of one check as far as this requirement is concerned.

    A requirement with ``operations`` is about those operations only: a check that did not exercise any of them
    (schemathesis: none is in the tier's bundle) is omitted for it, and a failing check counts against it only
    when a failure happened on one of them (schemathesis failures by the operations they were found on, our own
    by the operation of their evidence; a failure without evidence always counts).
    """
    ops = set(req.get("operations") or [])
    if not ops:
        return res.status, res.reason()
    fuzz = res.check_id.startswith("fuzz.")
    exercised = operations_in_run if fuzz else (touched or {}).get(res.check_id)
    if exercised is not None and not ops & exercised and res.status in (Status.PASS, Status.FAIL):
        return Status.OMIT, f"{res.check_id} did not exercise {', '.join(sorted(ops))} in this run"
    if res.status is Status.FAIL:
        for f in res.failures:
            if fuzz:
                where = set((f.data or {}).get("operations") or [])
            else:
                where = {e.operation_key for e in f.exchanges if e.operation_key}
                if not where:
                    return Status.FAIL, f.message
            if ops & where:
                return Status.FAIL, f.message
        return Status.PASS, f"no {res.check_id} failure on {', '.join(sorted(ops))}"
    return res.status, res.reason()


def verdicts(
    catalog: list[dict[str, Any]],
    results: dict[str, CheckResult],
    operations_in_run: set[str] | None = None,
    touched: dict[str, set[str]] | None = None,
) -> list[RequirementVerdict]:
    out = []
    for req in catalog:
        ids = checks_for(req)
        if not ids:
            out.append(RequirementVerdict(req, "manual", [], [str(req.get("manual", "manual"))]))
            continue
        ran = [
            (r.check_id, *_scoped(req, r, operations_in_run, touched))
            for r in (results[i] for i in ids if i in results)
        ]
        statuses = [st for _cid, st, _why in ran]
        reasons = [f"{cid}: {st.value} — {why}" for cid, st, why in ran if st in (Status.FAIL, Status.SKIP)]
        if Status.FAIL in statuses:
            st = "fail"
        elif Status.SKIP in statuses:
            st = "skip"
        elif Status.PASS in statuses:
            st = "pass"
        else:
            st = "omit"
            if not ran:
                reasons = [
                    f"verified by {', '.join(ids)} (not part of this run: `conformance receiver` checks the partner side)"
                ]
            else:
                reasons = [f"{cid}: {why}" for cid, _st, why in ran]
        out.append(RequirementVerdict(req, st, ids, reasons))
    return out


def exit_code(results: dict[str, CheckResult]) -> int:
    statuses = {r.status for r in results.values()}
    if Status.FAIL in statuses:
        return EXIT_FAIL
    if Status.SKIP in statuses:
        return EXIT_SKIP
    return EXIT_OK


def coverage(catalog: list[dict[str, Any]]) -> tuple[int, int]:
    auto = sum(1 for r in catalog if checks_for(r))
    return auto, len(catalog)


def _finding_dict(f: Any, red: Redactor) -> dict[str, Any]:
    d: dict[str, Any] = {"status": f.status.value, "message": red.text(f.message)}
    if f.exchanges:
        d["exchanges"] = [red.exchange(e.to_dict()) for e in f.exchanges[:3]]
    if f.data:
        d["evidence"] = [red.text(t) for t in (f.data.get("evidence") or [])]
    return d


def build_json(
    run: dict[str, Any],
    catalog: list[dict[str, Any]],
    results: dict[str, CheckResult],
    red: Redactor,
    touched: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    ops = run.get("operations")
    vs = verdicts(catalog, results, set(ops) if ops is not None else None, touched)
    auto, total = coverage(catalog)
    counts: dict[str, int] = {}
    for v in vs:
        counts[v.status] = counts.get(v.status, 0) + 1
    return {
        "run": red.json_value(run),
        "summary": {
            "exit_code": exit_code(results),
            "requirements_total": total,
            "requirements_automated": auto,
            "requirements": counts,
            "checks": {s.value: sum(1 for r in results.values() if r.status is s) for s in Status},
            "coverage_line": f"requirements verified automatically: {auto} / {total}",
        },
        "requirements": [
            {
                "id": v.req["id"],
                "seed": v.req.get("seed"),
                "section": v.req.get("section"),
                "text": v.req.get("text"),
                "status": v.status,
                "checks": v.checks,
                "reasons": [red.text(r) for r in v.reasons],
            }
            for v in vs
        ],
        "checks": [
            {
                "id": r.check_id,
                "title": r.title,
                "status": r.status.value,
                "requirements": list(r.requirements),
                "reason": red.text(r.reason()),
                "duration_s": round(r.duration_s, 2),
                "assertions_held": r.passes,
                "findings": [_finding_dict(f, red) for f in r.findings if f.status is not Status.PASS][:25],
            }
            for r in results.values()
        ],
    }


def write_junit(data: dict[str, Any], path: Path) -> None:
    root = ET.Element("testsuites", name="stealth-conformance")
    for suite_name, items, key in (
        ("requirements", data["requirements"], "id"),
        ("checks", data["checks"], "id"),
    ):
        suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(items)))
        nfail = nskip = 0
        for item in items:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"conformance.{suite_name}",
                name=f"{item[key]} {item.get('title') or item.get('text', '')}"[:300],
            )
            st = item["status"]
            detail = ""
            if suite_name == "requirements":
                detail = "\n".join(item.get("reasons") or [])
            else:
                detail = "\n\n".join(
                    f"{f['message']}\n"
                    + "\n".join(json.dumps(e, indent=1)[:4000] for e in f.get("exchanges", []))
                    + "\n".join(f.get("evidence") or [])
                    for f in item.get("findings", [])
                )
            if st == "fail":
                nfail += 1
                ET.SubElement(
                    case, "failure", message=(item.get("reason") or detail.split("\n")[0])[:500]
                ).text = detail
            elif st in ("skip", "omit", "manual"):
                if st == "skip":
                    nskip += 1
                ET.SubElement(case, "skipped", message=f"{st}: {(item.get('reason') or detail)[:500]}")
        suite.set("failures", str(nfail))
        suite.set("skipped", str(nskip))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330}
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%;margin:1rem 0}
td,th{border-bottom:1px solid #e3e6ec;padding:.35rem .5rem;text-align:left;vertical-align:top}
.pass{color:#0a7a32}.fail{color:#b3261e;font-weight:600}.skip{color:#a05a00;font-weight:600}.omit,.manual{color:#667}
pre{background:#f5f6f8;padding:.6rem;overflow:auto;max-height:28rem;font-size:12px}
details{margin:.4rem 0}.summary{font-size:1.05rem}
"""


def write_html(data: dict[str, Any], path: Path) -> None:
    e = html.escape
    s = data["summary"]
    rows = "".join(
        f"<tr><td>{e(r['id'])}</td><td class='{e(r['status'])}'>{e(r['status'])}</td>"
        f"<td>{e(str(r.get('seed')))} §{e(str(r.get('section')))}</td><td>{e(r.get('text') or '')}"
        + (
            f"<br><small>{'<br>'.join(e(x) for x in r['reasons'])}</small>"
            if r["reasons"] and r["status"] != "pass"
            else ""
        )
        + f"</td><td>{e(', '.join(r['checks']))}</td></tr>"
        for r in data["requirements"]
    )
    details = []
    for c in data["checks"]:
        if c["status"] not in ("fail", "skip"):
            continue
        body = "".join(
            f"<p class='{e(f['status'])}'>{e(f['message'] or '')}</p>"
            + "".join(f"<pre>{e(json.dumps(x, indent=2))}</pre>" for x in f.get("exchanges", []))
            + "".join(f"<pre>{e(t or '')}</pre>" for t in f.get("evidence", []))
            for f in c["findings"]
        )
        details.append(
            f"<details {'open' if c['status'] == 'fail' else ''}><summary><b>{e(c['id'])}</b> "
            f"<span class='{e(c['status'])}'>{e(c['status'])}</span> — {e(c['title'])} "
            f"({e(', '.join(c['requirements']))})</summary>{body}</details>"
        )
    checks_rows = "".join(
        f"<tr><td>{e(c['id'])}</td><td class='{e(c['status'])}'>{e(c['status'])}</td><td>{e(c['title'])}</td>"
        f"<td>{e(c['reason'] or '')}</td></tr>"
        for c in data["checks"]
    )
    doc = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Conformance report</title>
<style>{_CSS}</style></head><body>
<h1>Stealth Health Partner API — conformance report</h1>
<p class="summary">Target <code>{e(str(data["run"].get("base_url")))}</code>, tier <b>{e(str(data["run"].get("tier")))}</b>,
environment {e(str(data["run"].get("environment")))}, {"writes allowed" if data["run"].get("allow_writes") else "read-only"}.
<br>{e(s["coverage_line"])}; requirements this run: {e(json.dumps(s["requirements"]))}; checks: {e(json.dumps(s["checks"]))};
exit code {s["exit_code"]}.</p>
<h2>Failures and skips</h2>{"".join(details) or "<p>None.</p>"}
<h2>Requirements</h2><table><tr><th>ID</th><th>Status</th><th>Source</th><th>Requirement</th><th>Checks</th></tr>{rows}</table>
<h2>Checks</h2><table><tr><th>Check</th><th>Status</th><th>What</th><th>Why</th></tr>{checks_rows}</table>
</body></html>"""
    path.write_text(doc, encoding="utf-8")


def write_artifacts(data: dict[str, Any], report_dir: Path) -> dict[str, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": report_dir / "conformance.json",
        "junit": report_dir / "conformance-junit.xml",
        "html": report_dir / "conformance.html",
    }
    paths["json"].write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    write_junit(data, paths["junit"])
    write_html(data, paths["html"])
    return paths


def redact_files(report_dir: Path, red: Redactor) -> None:
    """Rewrite third-party artifacts (schemathesis HAR, JUnit, JSON, output) through the redactor."""
    fuzz = report_dir / "schemathesis"
    if not fuzz.is_dir():
        return
    for p in sorted(fuzz.rglob("*")):
        if p.suffix == ".har":
            try:
                p.write_text(json.dumps(red.har(json.loads(p.read_text(encoding="utf-8")))), encoding="utf-8")
            except ValueError:
                p.write_text(red.text(p.read_text(encoding="utf-8")) or "", encoding="utf-8")
        elif p.name == "fuzz-spec.json":
            p.unlink()
        elif p.is_file():
            p.write_text(red.text(p.read_text(encoding="utf-8", errors="replace")) or "", encoding="utf-8")


def print_summary(data: dict[str, Any], out: TextIO = sys.stdout) -> None:
    s = data["summary"]
    bad = [c for c in data["checks"] if c["status"] in ("fail", "skip")]
    if bad:
        print("\nChecks that did not pass:", file=out)
        for c in bad:
            print(f"  {c['status'].upper():4} {c['id']}: {c['reason']}", file=out)
    print("\nRequirements:", ", ".join(f"{k} {v}" for k, v in sorted(s["requirements"].items())), file=out)
    failing = [r for r in data["requirements"] if r["status"] == "fail"]
    for r in failing[:40]:
        print(f"  FAIL {r['id']} ({r['seed']} §{r['section']}): {r['text'][:100]}", file=out)
    print(s["coverage_line"], file=out)
    for note in (data.get("run") or {}).get("notes") or []:
        if note.startswith("schemathesis reported"):
            print(f"note: {note}", file=out)
    verdict = {0: "PASS", 1: "FAIL", 2: "INCOMPLETE (skipped checks block a pass)", 3: "CONFIGURATION ERROR"}
    print(f"Result: {verdict.get(s['exit_code'], s['exit_code'])}", file=out)
