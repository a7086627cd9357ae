"""Schemathesis over every operation of the tier's bundle, mapped to requirement ids.

Why the CLI (``schemathesis run`` in a subprocess) rather than the Python API: the CLI is schemathesis' stable,
documented contract; it runs all four phases (examples, coverage, fuzzing, stateful via the spec's links) with
its own rate limiter (``--rate-limit``), and writes JSON/JUnit/HAR reports that we parse, redact and attach. A
subprocess also isolates hypothesis' global state and lets a hard timeout bound the run. The JSON run report
gives each failure's code (ST101...); the JUnit report carries the request/response text of each failure; the
HAR file gives every exchange, which the observer checks (rate-limit headers, error envelope, PHI) also judge.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import REGISTRY, CheckResult, Context, Status, declare
from .http import Exchange

# schemathesis check name -> (our check id, failure codes it reports, requirement ids)
FUZZ_CHECKS: dict[str, tuple[str, tuple[str, ...], list[str]]] = {
    "not_a_server_error": (
        "fuzz.not_a_server_error",
        ("ST101", "ST102"),
        ["REF-HTTP-001", "GLO-ERR-006", "REF-REF-011"],
    ),
    "status_code_conformance": (
        "fuzz.status_code_conformance",
        ("ST103",),
        ["REF-HTTP-002", "REF-ERR-001", "GLO-ENV-002"],
    ),
    "content_type_conformance": (
        "fuzz.content_type_conformance",
        ("ST104", "ST105", "ST106"),
        ["REF-HTTP-002"],
    ),
    "response_headers_conformance": (
        "fuzz.response_headers_conformance",
        ("ST107",),
        ["REF-HTTP-002", "REF-RL-002"],
    ),
    "response_schema_conformance": (
        "fuzz.response_schema_conformance",
        ("ST108", "ST109", "ST110", "ST111"),
        ["REF-HTTP-002", "REF-ERR-003", "REF-MOD-001", "REF-PHI-002", "GLO-ID-001"],
    ),
    "negative_data_rejection": (
        "fuzz.negative_data_rejection",
        ("ST201",),
        ["REF-HTTP-003", "GLO-ERR-005", "REF-PAG-001", "REF-REF-002"],
    ),
    "positive_data_acceptance": (
        "fuzz.positive_data_acceptance",
        ("ST202",),
        ["REF-HTTP-003", "REF-REF-001"],
    ),
    "missing_required_header": ("fuzz.missing_required_header", ("ST203",), ["REF-AUTH-001"]),
    "unsupported_method": ("fuzz.unsupported_method", ("ST204",), ["REF-HTTP-004"]),
    "allow_header_conformance": ("fuzz.allow_header_conformance", ("ST205",), ["REF-HTTP-004"]),
    "use_after_free": ("fuzz.use_after_free", ("ST301",), ["REF-HTTP-005", "REF-REF-007"]),
    "ensure_resource_availability": (
        "fuzz.ensure_resource_availability",
        ("ST302",),
        ["REF-HTTP-005", "REF-REF-007"],
    ),
    "ignored_auth": ("fuzz.ignored_auth", ("ST401",), ["REF-AUTH-001", "REF-AUTH-002", "GLO-AUTH-001"]),
}
WRITE_ONLY = {"use_after_free", "ensure_resource_availability", "positive_data_acceptance"}
PHASES = ("examples", "coverage", "fuzzing", "stateful")

for _name, (_cid, _codes, _reqs) in FUZZ_CHECKS.items():
    declare(_cid, f"schemathesis {_name}", _reqs, phase="fuzz")


@dataclass
class FuzzSettings:
    max_examples: int = 8
    phases: tuple[str, ...] = PHASES
    timeout_s: float = 150.0
    max_time_s: float | None = None
    seed: int | None = 1
    workers: int = 2
    mode: str = "all"


def schemathesis_bin() -> list[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "schemathesis.cli"]


def build_command(
    ctx: Context, spec_path: Path, out: Path, settings: FuzzSettings, rps: float | None
) -> list[str]:
    p = ctx.primary
    checks = [n for n in FUZZ_CHECKS if ctx.allow_writes or n not in WRITE_ONLY]
    cmd = [
        *schemathesis_bin(),
        "run",
        str(spec_path),
        "--url",
        ctx.client.base_url,
        "-H",
        f"X-Partner-ID: {p.partner_id}",
        "-H",
        f"X-Api-Key: {p.api_key}",
        "--checks",
        ",".join(checks),
        "--phases",
        ",".join(settings.phases),
        "--max-examples",
        str(settings.max_examples),
        "--mode",
        settings.mode,
        "--report",
        "json,junit,har",
        "--report-dir",
        str(out),
        "--report-json-path",
        str(out / "schemathesis.json"),
        "--report-junit-path",
        str(out / "schemathesis-junit.xml"),
        "--report-har-path",
        str(out / "schemathesis.har"),
        "--no-shrink",
        "--workers",
        str(settings.workers),
        "--request-timeout",
        "10",
        "--suppress-health-check",
        "all",
        "--warnings",
        "off",
        "--output-sanitize",
        "true",
    ]
    if ctx.tier == "clinical":
        cmd += ["-H", "X-Access-Tier: clinical"]
    if settings.seed is not None:
        cmd += ["--seed", str(settings.seed)]
    if settings.max_time_s:
        cmd += ["--max-time", str(int(settings.max_time_s))]
    if rps:
        per_min = max(1, int(rps * 60))
        cmd += ["--rate-limit", f"{per_min}/m"]
    if not ctx.allow_writes:
        cmd += ["--include-method", "GET", "--include-method", "HEAD"]
    return cmd


def _har_exchanges(path: Path, label: str) -> list[Exchange]:
    try:
        har = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out = []
    for entry in (har.get("log") or {}).get("entries") or []:
        req, resp = entry.get("request") or {}, entry.get("response") or {}
        url = req.get("url", "")
        path_part = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
        text = (resp.get("content") or {}).get("text") or ""
        if (resp.get("content") or {}).get("encoding") == "base64":
            text = base64.b64decode(text).decode("utf-8", "replace")
        status = resp.get("status")
        out.append(
            Exchange(
                method=req.get("method", "GET"),
                url=url,
                path=path_part.split("?")[0],
                request_headers={h["name"]: h["value"] for h in req.get("headers") or []},
                request_body=(req.get("postData") or {}).get("text"),
                status=int(status) if status else None,
                response_headers={h["name"]: h["value"] for h in resp.get("headers") or []},
                response_text=text,
                elapsed_ms=float(entry.get("time") or 0),
                source="schemathesis",
                credential=label,
            )
        )
    return out


def _junit_failures(path: Path) -> dict[str, list[tuple[str, str]]]:
    """failure code -> [(test case name, failure text)]"""
    out: dict[str, list[tuple[str, str]]] = {}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return out
    for case in root.iter("testcase"):
        for failure in case.findall("failure"):
            text = failure.text or ""
            codes = {line.strip()[2:7] for line in text.splitlines() if line.strip().startswith("- ST")}
            codes |= {failure.get("message", "")}
            for code in codes:
                out.setdefault(code, []).append((case.get("name", ""), text))
    return out


_NOT_AVAILABLE_WITH = re.compile(r"Not available with: `([A-Z]+) ([^`]+)`")
_ERROR_CODE = re.compile(r'"code"\s*:\s*"([A-Z][A-Z0-9_]+)"')


def _documented_state_404s(ctx: Context, cases: list[tuple[str, str]]) -> list[str]:
    """ST302 cases whose 404 is a documented state of an existing object, not a missing one.

    E.g. the tracking link of a referral that has not shipped (404 TRACKING_NOT_AVAILABLE): the object was
    created and is found; the operation's own 404 code says what it does not have yet.
    """
    out = []
    for _name, text in cases:
        where, code = _NOT_AVAILABLE_WITH.search(text), _ERROR_CODE.search(text)
        if where is None or code is None or code.group(1).endswith("_NOT_FOUND"):
            continue
        op = next((o for o in ctx.spec.operations if (o.method, o.path) == where.groups()), None)
        if op is not None and code.group(1) in op.error_codes(404):
            out.append(f"{where.group(1)} {where.group(2)} answered its documented 404 {code.group(1)}")
    return out


_LAST_CURL = re.compile(r"curl -X ([A-Z]+) .*?https?://[^/\s']+(/[^\s'?]*)")
_STATUS = re.compile(r"^\[(\d{3})\]", re.MULTILINE)


# Codes that say "this body breaks the schema": a schema-valid body must never get them.
SCHEMA_CODES = frozenset({"INVALID_BODY", "VALIDATION_ERROR"})


def _documented_state_422s(ctx: Context, cases: list[tuple[str, str]]) -> list[str]:
    """ST202 cases answered 400 or 422 with a business-rule code the operation documents for that status: a rule
    the schema cannot express (the state of the objects named — a prescription not signed yet, a prescriber the
    stateful sequence deactivated — or the partner's configuration, such as a product's required intake questions).
    A schema-valid body refused with a schema code (INVALID_BODY, VALIDATION_ERROR) is never excused."""
    out = []
    for _name, text in cases:
        curls, status, code = _LAST_CURL.findall(text), _STATUS.search(text), _ERROR_CODE.search(text)
        if not curls or status is None or status.group(1) not in ("400", "422") or code is None:
            continue
        if code.group(1) in SCHEMA_CODES:
            continue
        method, path = curls[-1]
        op = ctx.spec.find_operation(method, path)
        if op is not None and code.group(1) in op.error_codes(int(status.group(1))):
            out.append(
                f"{op.key} answered its documented {status.group(1)} {code.group(1)} (a business rule)"
            )
    return out


def partner_categories(ctx: Context) -> list[str]:
    """The product categories the primary partner may use, from its own GET /partner/products."""
    op = next((o for o in ctx.spec.operations if o.operation_id == "listProducts"), None)
    if op is None:
        return []
    ex = ctx.client.op_request(op, creds=ctx.primary)
    items = ex.json.get("products") if isinstance(ex.json, dict) else None
    found = {p.get("category") or p.get("category_id") for p in items or [] if isinstance(p, dict)}
    return sorted(c for c in found if isinstance(c, str))


def fuzz_document(ctx: Context) -> dict[str, Any]:
    """The tier's bundle as schemathesis gets it: opaque server-issued cursors are left out.

    A cursor is a token only the server can issue; any string is schema-valid, so positive_data_acceptance would
    demand that a made-up cursor be accepted, while the contract answers 400 INVALID_CURSOR. Paging with real
    cursors and refusing forged ones are checked by pagination.no_repeat_no_drop and pagination.limit_bounds.
    """
    doc = copy.deepcopy(ctx.spec.doc)
    # Product categories are configured per partner (422 INVALID_PRODUCT_CATEGORY otherwise, a documented
    # business rule): positive data uses the partner's own catalog, read from GET /partner/products.
    # Only in bodies: as a query filter any category is valid (an unknown one matches nothing).
    categories = ctx.state.get("product_categories")
    schemas = (doc.get("components") or {}).get("schemas") or {}
    original = schemas.get("ProductCategory")
    if categories and isinstance(original, dict):
        ref = "#/components/schemas/ProductCategory"
        for item in (doc.get("paths") or {}).values():
            for holder in [item, *(v for v in item.values() if isinstance(v, dict))]:
                for param in holder.get("parameters") or []:
                    if isinstance(param, dict) and (param.get("schema") or {}).get("$ref") == ref:
                        param["schema"] = copy.deepcopy(original)
        schemas["ProductCategory"] = {**original, "enum": list(categories)}
    _documented_rules(schemas)
    for item in (doc.get("paths") or {}).values():
        for holder in [item, *(v for k, v in item.items() if isinstance(v, dict) and k != "parameters")]:
            params = holder.get("parameters")
            if isinstance(params, list):
                holder["parameters"] = [
                    p
                    for p in params
                    if not (
                        ctx.spec.deref(p).get("in") == "query" and ctx.spec.deref(p).get("name") == "cursor"
                    )
                ]
    return doc


# A date no earlier than 2030 (and a day every month has), so that "after today" holds whenever the suite runs.
FUTURE_DATE = r"^20[3-9][0-9]-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$"


def _documented_rules(schemas: dict[str, Any]) -> None:
    """Rules the spec documents in prose (the server checks them in the schema step) written as schema.

    Positive data must satisfy them and negative data may break them, both answered as documented:
    a prescription names exactly one of patient_id / referral_id / inline_patient (400 PATIENT_REFERRAL_REQUIRED,
    DECISIONS C-007); a license registered must not have expired (400 PRESCRIBER_LICENSE_EXPIRED).
    """
    prescription = schemas.get("CreatePrescriptionRequest")
    if isinstance(prescription, dict) and "oneOf" not in prescription:
        props = prescription.get("properties") or {}
        modes = [m for m in ("patient_id", "referral_id", "inline_patient") if m in props]
        if modes:
            prescription["oneOf"] = [{"required": [m]} for m in modes]
    # Request side only: a prescriber read back may hold a license that has expired since.
    licenses = ((schemas.get("CreatePrescriberRequest") or {}).get("properties") or {}).get("licenses")
    license_ = schemas.get("PrescriberLicense")
    if (
        isinstance(licenses, dict)
        and isinstance(license_, dict)
        and "expires_at" in (license_.get("properties") or {})
    ):
        registered = copy.deepcopy(license_)
        expires = registered["properties"]["expires_at"]
        expires.pop("format", None)
        expires["pattern"] = FUTURE_DATE
        schemas["ConformanceRegisteredLicense"] = registered
        licenses["items"] = {"$ref": "#/components/schemas/ConformanceRegisteredLicense"}


def run_fuzz(ctx: Context, out_dir: Path, settings: FuzzSettings) -> dict[str, CheckResult]:
    """Run schemathesis once; one CheckResult per schemathesis check."""
    results = {
        cid: CheckResult(cid, REGISTRY[cid].title, REGISTRY[cid].requirements)
        for cid, _, _ in FUZZ_CHECKS.values()
    }
    # Absolute: schemathesis runs in a throwaway working directory.
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Never read a previous run's reports as this run's (they may also be redacted already).
    for stale in (
        "schemathesis.json",
        "schemathesis.har",
        "schemathesis-junit.xml",
        "schemathesis-output.txt",
    ):
        (out_dir / stale).unlink(missing_ok=True)
    if "product_categories" not in ctx.state:
        ctx.state["product_categories"] = partner_categories(ctx)
    spec_path = out_dir / "fuzz-spec.json"
    spec_path.write_text(json.dumps(fuzz_document(ctx)), encoding="utf-8")
    cmd = build_command(ctx, spec_path, out_dir, settings, ctx.client.limiter.rps)
    env = dict(os.environ, SCHEMATHESIS_TELEMETRY="false", NO_COLOR="1")
    started = time.monotonic()
    # Schemathesis keeps a crash cache (with response bodies) in its working directory: use a throwaway one.
    with tempfile.TemporaryDirectory(prefix="conformance-st-") as workdir:
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=settings.timeout_s, env=env, cwd=workdir
            )
            timed_out = False
            output = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            timed_out = True
            output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    (out_dir / "schemathesis-output.txt").write_text(output, encoding="utf-8")
    elapsed = time.monotonic() - started
    report_path = out_dir / "schemathesis.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        reason = "timed out" if timed_out else f"exited without a report: {output[-600:]}"
        for name, (cid, _codes, _r) in FUZZ_CHECKS.items():
            if not ctx.allow_writes and name in WRITE_ONLY:
                results[cid].omit("needs writes (stateful creates); read-only run")
            else:
                results[cid].skip(f"schemathesis {reason}")
        return results
    har = _har_exchanges(out_dir / "schemathesis.har", ctx.primary.label)
    for ex in har:
        op = ctx.spec.find_operation(ex.method, ex.path)
        if op is not None:
            ex.operation_id, ex.operation_key = op.operation_id, op.key
    ctx.client.exchanges.extend(har)
    junit = _junit_failures(out_dir / "schemathesis-junit.xml")
    failures = {f.get("code"): f for f in report.get("failures") or []}
    generated = (report.get("test_cases") or {}).get("generated", 0)
    ctx.state["fuzz_summary"] = {
        "generated": generated,
        "elapsed_s": round(elapsed, 1),
        "stop_reason": report.get("stop_reason"),
        "operations": report.get("operations"),
        "errors": report.get("errors"),
        "command": report.get("command"),
    }
    errors = report.get("errors") or []
    if errors:
        # Schemathesis' own errors (not the deployment's): some generated cases never ran. Said, not hidden.
        what = ", ".join(f"{e.get('title')} x{e.get('count')}" for e in errors if isinstance(e, dict))
        ctx.notes.append(f"schemathesis reported internal errors ({what}); see schemathesis-output.txt")
    for name, (cid, codes, _r) in FUZZ_CHECKS.items():
        res = results[cid]
        if not ctx.allow_writes and name in WRITE_ONLY:
            res.omit("needs writes (stateful creates); read-only run")
            continue
        hit = [failures[c] for c in codes if c in failures]
        for code, excuse in (("ST302", _documented_state_404s), ("ST202", _documented_state_422s)):
            cases = junit.get(code, [])
            if code in codes and hit and cases:
                excused = excuse(ctx, cases)
                if len(excused) == len(cases):
                    hit = [f for f in hit if f.get("code") != code]
                    res.ok("; ".join(sorted(set(excused))))
        for f in hit:
            ops = ", ".join((f.get("operations") or [])[:6])
            res.fail(
                f"{f.get('code')} {f.get('title')}: {f.get('count')} case(s) on {ops}",
                data={
                    "evidence": [t for c in codes for _n, t in junit.get(c, [])][:3],
                    "operations": list(f.get("operations") or []),
                },
            )
        if not hit:
            if generated:
                res.ok(f"{generated} generated test cases, no {name} failure")
            else:
                res.skip("schemathesis generated no test case")
    if timed_out:
        for res in results.values():
            if res.status is Status.PASS:
                res.skip(f"schemathesis hit the {settings.timeout_s:.0f}s budget; the run is incomplete")
    return results
