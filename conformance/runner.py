"""Run the suite: preflight, active checks, schemathesis, late checks, observers, report."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from . import report
from .checks import Check, CheckResult, Context, Status, load_all, run_check
from .fuzz import FuzzSettings, run_fuzz
from .http import ApiClient, Credentials
from .receiver import WebhookReceiver
from .redact import Redactor
from .spec import Spec

DEFAULT_SPEC_CANDIDATES = ("build/openapi/partner-api.json",)


@dataclass
class RunConfig:
    base_url: str
    partner_id: str
    api_key: str
    tier: str = "referral"
    second_partner_id: str | None = None
    second_api_key: str | None = None
    second_tier: str | None = None
    referral_partner_id: str | None = None  # a referral-tier key when neither partner above is one
    referral_api_key: str | None = None
    webhook_listen: str | None = None
    webhook_public_url: str | None = None
    webhook_secret: str | None = None
    webhook_wait_s: float = 20.0
    webhook_quiet_s: float = 1.5  # how long to watch for a delivery that must not come
    report_dir: str = "conformance-report"
    allow_writes: bool = False
    max_rps: float | None = None
    spec: str | None = None
    environment: str | None = None  # sandbox | production; default from the key prefix
    burst: bool = False
    fuzz: bool = True
    fuzz_max_examples: int = 8
    fuzz_phases: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful")
    fuzz_timeout_s: float = 150.0
    fuzz_max_time_s: float | None = None
    only: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)


def resolve_spec(location: str | None) -> str:
    if location:
        return location
    for cand in DEFAULT_SPEC_CANDIDATES:
        for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
            if (base / cand).is_file():
                return str(base / cand)
    raise FileNotFoundError(
        "no spec: pass --spec (a bundled partner-api JSON/YAML file or URL) or run `make bundle`"
    )


def environment_of(cfg: RunConfig) -> str:
    if cfg.environment:
        return cfg.environment
    return "production" if cfg.api_key.startswith("sk_live_") else "sandbox"


def _selected(chk: Check, cfg: RunConfig) -> bool:
    if cfg.only and not any(chk.id == o or chk.id.startswith(o.rstrip("*")) for o in cfg.only):
        return chk.phase == "preflight"
    return not any(chk.id == x or chk.id.startswith(x.rstrip("*")) for x in cfg.exclude)


class Progress:
    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.n, self.out = total, 0, out

    def line(self, res: CheckResult) -> None:
        self.n += 1
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "SKIP", "omit": "omit"}[res.status.value]
        msg = "" if res.status is Status.PASS else f" — {res.reason()[:140]}"
        print(
            f"[{self.n:>3}/{self.total}] {mark} {res.check_id} ({res.duration_s:.1f}s){msg}",
            file=self.out,
            flush=True,
        )


# Called with every exchange of a run (schemathesis' included) before the artifacts are redacted; in-process
# callers only (conformance.local collects the PHI values the run sent and received, to scan the server's log).
EXCHANGE_OBSERVERS: list[Callable[[list[Any]], None]] = []


def run(
    cfg: RunConfig, out: TextIO = sys.stdout, transport: httpx.BaseTransport | None = None
) -> tuple[int, dict[str, Any]]:
    started = time.monotonic()
    registry = load_all()
    spec_loc = resolve_spec(cfg.spec)
    spec = Spec.load(spec_loc, tier=cfg.tier)
    env = environment_of(cfg)
    client = ApiClient(cfg.base_url, spec, max_rps=cfg.max_rps, transport=transport)
    primary = Credentials(cfg.partner_id, cfg.api_key, cfg.tier, "primary")
    second = None
    if cfg.second_partner_id and cfg.second_api_key:
        second = Credentials(cfg.second_partner_id, cfg.second_api_key, cfg.second_tier or cfg.tier, "second")
    referral_key = None
    if cfg.referral_partner_id and cfg.referral_api_key:
        referral_key = Credentials(cfg.referral_partner_id, cfg.referral_api_key, "referral", "referral")
    receiver = None
    if cfg.webhook_listen:
        if not cfg.webhook_secret:
            raise ValueError("--webhook-listen needs --webhook-secret (the partner's whsec_ secret)")
        host, _, port = cfg.webhook_listen.rpartition(":")
        receiver = WebhookReceiver(
            host or "127.0.0.1", int(port), cfg.webhook_secret, cfg.webhook_public_url
        ).start()
    ctx = Context(
        spec=spec,
        client=client,
        primary=primary,
        second=second,
        referral_key=referral_key,
        tier=cfg.tier,
        environment=env,
        allow_writes=cfg.allow_writes,
        burst=cfg.burst,
        receiver=receiver,
        webhook_wait_s=cfg.webhook_wait_s,
        webhook_quiet_s=cfg.webhook_quiet_s,
    )
    report_dir = Path(cfg.report_dir)
    results: dict[str, CheckResult] = {}
    print(
        f"conformance: {cfg.base_url} tier={cfg.tier} environment={env} "
        f"{'writes allowed' if cfg.allow_writes else 'read-only'} spec={spec_loc} "
        f"({len(spec.operations)} operations)",
        file=out,
        flush=True,
    )
    try:
        checks = [c for c in registry.values() if c.phase != "partner" and _selected(c, cfg)]
        active = [c for c in checks if c.func is not None]
        fuzz_checks = [c for c in checks if c.phase == "fuzz"]
        progress = Progress(len(active) + len(fuzz_checks), out)
        # 1. Configuration first: nothing else runs if it fails.
        for chk in [c for c in active if c.phase == "preflight"]:
            res = run_check(chk, ctx)
            results[chk.id] = res
            progress.line(res)
            if res.status is not Status.PASS:
                print(
                    f"\nconformance: configuration problem — {res.reason()}\nNothing else was run.", file=out
                )
                data = _finish(ctx, cfg, results, report_dir, started, spec_loc, out, config_error=True)
                return report.EXIT_CONFIG, data
        if not spec.phi_names:
            ctx.notes.append(
                "the spec has no x-phi marks (a referral-tier subset?): PHI checks fall back to field names; "
                "pass the full bundle with --spec"
            )
        for note in ctx.notes:
            print(f"  note: {note}", file=out)
        # 2. Active checks.
        for chk in [c for c in active if c.phase == "active"]:
            results[chk.id] = run_check(chk, ctx)
            progress.line(results[chk.id])
        # 3. Schemathesis.
        if fuzz_checks:
            if cfg.fuzz:
                print("  running schemathesis ...", file=out, flush=True)
                settings = FuzzSettings(
                    max_examples=cfg.fuzz_max_examples,
                    phases=tuple(cfg.fuzz_phases),
                    timeout_s=cfg.fuzz_timeout_s,
                    max_time_s=cfg.fuzz_max_time_s,
                )
                fres = run_fuzz(ctx, report_dir / "schemathesis", settings)
                summary = ctx.state.get("fuzz_summary") or {}
                if summary:
                    print(
                        f"  schemathesis: {summary.get('generated')} test cases in {summary.get('elapsed_s')}s",
                        file=out,
                    )
            else:
                fres = {}
            for chk in fuzz_checks:
                res = fres.get(chk.id) or CheckResult(chk.id, chk.title, chk.requirements)
                if chk.id not in fres:
                    res.skip("schemathesis was not run (--no-fuzz)")
                results[chk.id] = res
                progress.line(res)
        # 4. Late checks (clock-driven retries).
        late = [c for c in active if c.phase == "late" and c.id != "ratelimit.burst"]
        for chk in late:
            results[chk.id] = run_check(chk, ctx)
            progress.line(results[chk.id])
        # 5. Observers over everything seen (some read events back, so before the burst).
        if receiver is not None:
            time.sleep(cfg.webhook_quiet_s)
        for chk in [c for c in active if c.phase == "observe"]:
            results[chk.id] = run_check(chk, ctx)
            progress.line(results[chk.id])
        # 6. The rate-limit burst last of all: it exhausts the partner's window (and checks its own 429s).
        for chk in [c for c in active if c.id == "ratelimit.burst"]:
            results[chk.id] = run_check(chk, ctx)
            progress.line(results[chk.id])
        data = _finish(ctx, cfg, results, report_dir, started, spec_loc, out)
        return data["summary"]["exit_code"], data
    finally:
        client.close()
        if receiver is not None:
            receiver.stop()


def touched_operations(ctx: Context, results: dict[str, CheckResult]) -> dict[str, set[str]]:
    """The operations each check exercised (observers judge every exchange of the run)."""
    touched: dict[str, set[str]] = {cid: set() for cid in results}
    everything = {e.operation_key for e in ctx.client.exchanges if e.operation_key}
    for ex in ctx.client.exchanges:
        if ex.source.startswith("check:") and ex.operation_key:
            touched.setdefault(ex.source[len("check:") :], set()).add(ex.operation_key)
    registry = load_all()
    for cid in results:
        chk = registry.get(cid)
        if chk is not None and chk.phase == "observe":
            touched[cid] = set(everything)
    return touched


def _finish(
    ctx: Context,
    cfg: RunConfig,
    results: dict[str, CheckResult],
    report_dir: Path,
    started: float,
    spec_loc: str,
    out: TextIO,
    config_error: bool = False,
) -> dict[str, Any]:
    for observe in EXCHANGE_OBSERVERS:  # before anything is redacted (conformance.local's PHI log scan)
        observe(ctx.client.exchanges)
    secrets = [cfg.api_key, cfg.second_api_key or "", cfg.referral_api_key or "", cfg.webhook_secret or ""]
    red = Redactor(ctx.spec, secrets)
    for ex in ctx.client.exchanges:
        red.learn_text(ex.response_text)
        if ex.source != "schemathesis":  # generated data is not a person's; its keys are still masked
            red.learn_text(ex.request_body)
    if ctx.receiver is not None:
        for d in ctx.receiver.deliveries():
            red.learn(d.json)
    catalog = report.load_catalog()
    run_info = {
        "base_url": cfg.base_url,
        "tier": cfg.tier,
        "environment": ctx.environment,
        "allow_writes": cfg.allow_writes,
        "spec": spec_loc,
        "partner_id": cfg.partner_id,
        "second_partner_id": cfg.second_partner_id,
        "duration_s": round(time.monotonic() - started, 1),
        "requests": len(ctx.client.exchanges),
        "max_rps": ctx.client.limiter.rps,
        "notes": ctx.notes,
        "fuzz": ctx.state.get("fuzz_summary"),
        "webhook_deliveries": len(ctx.receiver.deliveries()) if ctx.receiver else None,
        "operations": sorted(op.key for op in ctx.spec.operations),
    }
    data = report.build_json(run_info, catalog, results, red, touched_operations(ctx, results))
    if config_error:
        data["summary"]["exit_code"] = report.EXIT_CONFIG
    report.redact_files(report_dir, red)
    paths = report.write_artifacts(data, report_dir)
    report.print_summary(data, out)
    print(
        f"Reports: {', '.join(str(p) for p in paths.values())} ({run_info['duration_s']}s, "
        f"{run_info['requests']} requests)",
        file=out,
    )
    return data
