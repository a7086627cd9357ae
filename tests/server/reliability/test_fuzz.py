"""Schemathesis over every operation of the partner bundle against a real server process: zero 5xx and zero
responses that violate the spec (status codes, content types, headers, bodies). The operations are called by
a partner of their tier (clinical for referral and clinical operations, prescriber for prescriber-only
ones). `make soak` generates at least 20,000 cases; `make test` runs a token pass to keep this test honest.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stealth_spec import walk
from tests.conftest import bundled
from tests.server.reliability.procs import Server, Store, headers, record

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


def _subset(tier: str) -> dict[str, Any]:
    """The bundle with only the operations ``tier`` calls here: the clinical partner everything but the
    prescriber-only operations; the prescriber partner its own and those it shares (GET an appointment), so the
    spec's links from its creates stay whole. Links to an operation left out are dropped."""
    doc = copy.deepcopy(bundled("partner"))
    doc.pop("webhooks", None)
    for op in list(walk.operations(doc)):
        if op.is_webhook:
            continue
        tiers = op.tiers()
        keep = (
            ("prescriber" in tiers and "referral" not in tiers)
            if tier == "prescriber"
            else tiers != {"prescriber"}
        )
        if not keep:
            del doc["paths"][op.key][op.method]
    doc["paths"] = {
        k: v
        for k, v in doc["paths"].items()
        if any(m in v for m in ("get", "post", "put", "patch", "delete"))
    }
    kept = {op.op.get("operationId") for op in walk.operations(doc) if not op.is_webhook}
    for op in walk.operations(doc):
        for response in (op.op.get("responses") or {}).values():
            links = walk.deref(doc, response).get("links") if isinstance(response, dict) else None
            if isinstance(links, dict):
                for name in [
                    n for n, link in links.items() if walk.deref(doc, link).get("operationId") not in kept
                ]:
                    del links[name]
    return doc


def _schemathesis(
    base: str, spec: Path, hdrs: dict[str, str], out: Path, examples: int, phases: str
) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("schemathesis")
    cmd = [str(exe), "run", str(spec), "--url", base]
    for name, value in hdrs.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += [
        "--checks",
        ",".join(CHECKS),
        "--phases",
        phases,
        "--max-examples",
        str(examples),
        "--mode",
        "all",
        "--report",
        "json",
        "--report-dir",
        str(out),
        "--report-json-path",
        str(out / "schemathesis.json"),
        "--no-shrink",
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--warnings",
        "off",
        "--seed",
        "11",
    ]
    env = dict(os.environ, SCHEMATHESIS_TELEMETRY="false", NO_COLOR="1")
    with tempfile.TemporaryDirectory(prefix="rl-st-") as workdir:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir, timeout=3600)
    (out / "output.txt").write_text(proc.stdout + proc.stderr)
    report = json.loads((out / "schemathesis.json").read_text())
    report["_exit"] = proc.returncode
    report["_output"] = proc.stdout + proc.stderr
    report["_tail"] = report["_output"][-3000:]
    return report


# A crash inside schemathesis itself that involves no request: its coverage phase builds hypothesis
# strategies whose repr parses a lambda's source, and CPython 3.11.7's ast.parse can raise this
# (python/cpython gh-106905, fixed in 3.11.9). Seen once in the prescriber subset's coverage phase.
TOOL_BUGS = ("SystemError: AST constructor recursion depth mismatch",)


def unexplained_errors(report: dict[str, Any]) -> int:
    """Errors schemathesis reported that are not a known crash of the tool itself (those fail the test)."""
    total = sum(int(e.get("count", 1)) for e in report.get("errors") or [])
    known = sum(str(report.get("_output", "")).count(bug) for bug in TOOL_BUGS)
    return max(0, total - known)


def tool_errors(report: dict[str, Any]) -> int:
    total = sum(int(e.get("count", 1)) for e in report.get("errors") or [])
    return total - unexplained_errors(report)


@pytest.mark.parametrize(
    ("examples", "phases", "minimum"),
    [
        pytest.param(1, "examples", 10, id="quick"),
        pytest.param(1000, "examples,coverage,fuzzing,stateful", 20_000, marks=pytest.mark.soak, id="soak"),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_schemathesis_finds_no_5xx_and_no_spec_violation(
    live: Callable[..., tuple[Server, Store]], tmp_path: Path, examples: int, phases: str, minimum: int
) -> None:
    server, store = live()
    generated = 0
    failures: list[Any] = []
    ops = 0
    crashes = 0
    for tier in ("clinical", "prescriber"):
        creds = store.partner(tier, webhook_url="http://127.0.0.1:9/hook")
        spec = tmp_path / f"{tier}.json"
        doc = _subset(tier)
        ops += sum(1 for _ in walk.operations(doc))
        spec.write_text(json.dumps(doc))
        out = tmp_path / f"st-{tier}"
        out.mkdir()
        report = _schemathesis(server.base_url, spec, headers(creds), out, examples, phases)
        generated += int((report.get("test_cases") or {}).get("generated", 0))
        failures += report.get("failures") or []
        assert unexplained_errors(report) == 0, report["_tail"]
        crashes += tool_errors(report)
    log = server.log_text()
    server_errors = log.count('"status":5')
    record(
        "schemathesis over every operation",
        operations=ops,
        max_examples=examples,
        phases=phases,
        cases_generated=generated,
        failures=len(failures),
        responses_5xx=server_errors,
        schemathesis_internal_crashes=crashes,
    )
    assert not failures, json.dumps(failures, indent=1)[:4000]
    assert server_errors == 0
    assert generated >= minimum


def test_only_the_known_tool_crash_is_excused() -> None:
    """The soak's one schemathesis crash (its coverage phase, no request involved) is excused; any other
    error, or more errors than known crashes, fails the run."""
    output = (Path(__file__).parent / "data" / "schemathesis_internal_error.txt").read_text()
    crash = {"errors": [{"title": "Runtime Error", "count": 1}], "_output": output}
    assert (unexplained_errors(crash), tool_errors(crash)) == (0, 1)
    twice = {"errors": [{"title": "Runtime Error", "count": 2}], "_output": output}
    assert unexplained_errors(twice) == 1
    network = {"errors": [{"title": "Network Error", "count": 1}], "_output": "Connection refused"}
    assert unexplained_errors(network) == 1
    assert unexplained_errors({"errors": [], "_output": output}) == 0
