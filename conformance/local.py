"""Run the conformance suite against a fresh local sandbox (what `make conformance` does).

Starts `stealth serve` on a throwaway SQLite database, provisions the partners the suite needs
(two partners of each tier run plus a referral-tier one, webhooks pointed at the suite's receiver),
runs the suite once per tier, and exits non-zero when any run fails.

    python -m conformance.local [--tiers referral,clinical,prescriber] [--quick] [--report-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
# The sandbox default limit: the suite caps itself at 80% of the primary partner's (40 requests/s), so the
# rate cap is not what bounds a run.
RATE_LIMIT = 3000


# each run writes the PHI values it saw here (conformance.cli), for the log scan
PHI_OUT_ENV = "STEALTH_CONFORMANCE_PHI_OUT"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Who each tier's run uses: (primary role, second role, referral-tier probe role or None). In a clinical or
# prescriber run partner B has the same tier as partner A, so object-level authorization is tested over every
# operation of the tier (not just refused by tier), and a third, referral-tier partner checks tier enforcement
# and that no PHI reaches the referral tier. No partner is shared between tiers: the runs go in parallel.
RUNS: dict[str, tuple[str, str, str | None]] = {
    "referral": ("referral", "referral_b", None),
    "clinical": ("clinical", "clinical_b", "clinical_ref"),
    "prescriber": ("prescriber", "prescriber_b", "prescriber_ref"),
}
# role -> (tier, own rate limit per minute or None for the sandbox default). Each run's referral-tier helper has a
# low limit of its own: the suite bursts with the lowest-limit key, which then takes seconds.
ROLES: dict[str, tuple[str, int | None]] = {
    "referral": ("referral", None),
    "referral_b": ("referral", 300),
    "clinical": ("clinical", None),
    "clinical_b": ("clinical", None),
    "clinical_ref": ("referral", 300),
    "prescriber": ("prescriber", None),
    "prescriber_b": ("prescriber", None),
    "prescriber_ref": ("referral", 300),
}


def stealth(env: dict[str, str], *args: str) -> dict[str, str]:
    """Run a `stealth` CLI command (with --json) against the sandbox of ``env``; its JSON output."""
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(
            f"`stealth {' '.join(args)}` failed ({out.returncode}):\n{out.stderr.strip()[-2000:]}"
        )
    return dict(json.loads(out.stdout))


def sandbox_env(state: Path, *, faults: tuple[str, ...] = (), rate_limit: int = RATE_LIMIT) -> dict[str, str]:
    """The environment of a fresh sandbox in ``state`` (SQLite, background jobs on, no auto-advance)."""
    env = {
        **os.environ,
        "STEALTH_STATE_DIR": str(state / ".stealth"),
        "STEALTH_DATABASE_URL": f"sqlite:///{state / 'sandbox.db'}",
        "STEALTH_ENVIRONMENT": "sandbox",
        "STEALTH_RATE_LIMIT_PER_MINUTE": str(rate_limit),
        "STEALTH_AUTO_ADVANCE_SECONDS": "0",
        "STEALTH_BACKGROUND_JOBS": "1",
        "STEALTH_TEST_FAULTS": ",".join(faults),
        # Redacted bodies and webhook payloads in the log, scanned for the run's PHI afterwards (phi_scan).
        # INFO, not DEBUG: DEBUG's volume slows the server enough to starve the 30 s rate-limit burst check
        # (tests/server/test_phi_logs.py proves the DEBUG case).
        "STEALTH_LOG_BODIES": "1",
        "STEALTH_LOG_LEVEL": "info",
    }
    env.pop("STEALTH_REDIS_URL", None)
    return env


def provision(env: dict[str, str], roles: list[str], hook_urls: dict[str, str]) -> dict[str, dict[str, str]]:
    """Create one partner per role in the sandbox's database (what `stealth partner create` does).

    ``hook_urls``: role -> the webhook URL of that partner (the suite's receiver of its run).
    """
    from server.config import Settings
    from server.crypto import SecretBox, load_or_create_key
    from server.db.engine import Database
    from server.services.partners import create_partner

    settings = Settings.from_env(env, cwd=REPO)
    db = Database(settings.database_url)
    try:
        db.migrate()
        box = SecretBox(load_or_create_key(settings))
        out = {}
        for role in roles:
            tier, limit = ROLES[role]
            creds = create_partner(
                db,
                box,
                tier=tier,
                environment=settings.environment,
                name=f"Conformance {role}",
                webhook_url=hook_urls.get(role),
                rate_limit_per_minute=limit,
            )
            out[role] = creds.as_dict()
        return out
    finally:
        db.dispose()


@contextlib.contextmanager
def sandbox(env: dict[str, str], port: int, log_path: Path) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the sandbox exited with {proc.returncode}; see {log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not start within 60 s; see {log_path}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class LocalSandbox:
    base_url: str
    partners: dict[str, dict[str, str]]
    receiver_ports: dict[str, int]  # tier -> the port of that run's webhook receiver
    database_url: str = ""
    scratch: Path | None = None  # deleted with the sandbox: where the runs leave the PHI values they saw

    def hook_url(self, tier: str) -> str:
        return f"http://127.0.0.1:{self.receiver_ports[tier]}/webhooks"

    def run_args(self, tier: str, report_dir: Path, spec: Path | None = None) -> list[str]:
        """`conformance run` arguments for one tier's run against this sandbox."""
        first, second, probe = RUNS[tier]
        primary, other = self.partners[first], self.partners[second]
        args = [
            "run",
            "--base-url",
            self.base_url,
            "--partner-id",
            primary["partner_id"],
            "--api-key",
            primary["api_key"],
            "--tier",
            tier,
            "--second-partner-id",
            other["partner_id"],
            "--second-api-key",
            other["api_key"],
            "--second-tier",
            other["tier"],
            *(
                [
                    "--referral-partner-id",
                    self.partners[probe]["partner_id"],
                    "--referral-api-key",
                    self.partners[probe]["api_key"],
                ]
                if probe
                else []
            ),
            "--webhook-listen",
            f"127.0.0.1:{self.receiver_ports[tier]}",
            "--webhook-public-url",
            self.hook_url(tier),
            "--webhook-secret",
            primary["webhook_secret"],
            "--report-dir",
            str(report_dir),
            "--allow-writes",
        ]
        # The full bundle: the suite derives the tier's subset itself and still needs the sandbox controls.
        if spec is not None and spec.is_file():
            args += ["--spec", str(spec)]
        return args


_SPEC_DOCUMENT: dict[str, object] = {}


@contextlib.contextmanager
def sandbox_in_process(env: dict[str, str], port: int) -> Iterator[str]:
    """The same app as `stealth serve` (create_app, lifespan and background jobs) on a thread of this process.

    For the suite's own tests, which start many sandboxes: no interpreter start and the spec bundled once.
    Background jobs follow this process' STEALTH_BACKGROUND_JOBS (set it to 1 under pytest).
    """
    import threading

    import uvicorn

    from server import faults
    from server.app import build_state, create_app
    from server.config import Settings

    settings = Settings.from_env(env, cwd=REPO).with_(port=port)
    if "document" not in _SPEC_DOCUMENT:
        from server.spec import load_spec

        _SPEC_DOCUMENT["document"] = load_spec(settings.spec_dir)
    state = build_state(settings, spec_document=_SPEC_DOCUMENT["document"])  # type: ignore[arg-type]
    app = create_app(settings, state=state)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="sandbox", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process sandbox did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        state.db.dispose()
        faults.configure(())


@contextlib.contextmanager
def local_sandbox(
    tiers: list[str],
    log_path: Path,
    *,
    faults: tuple[str, ...] = (),
    rate_limit: int = RATE_LIMIT,
    in_process: bool = False,
) -> Iterator[LocalSandbox]:
    """A fresh sandbox on a throwaway SQLite database with the partners the given tiers' runs need.

    ``faults`` are test faults (STEALTH_TEST_FAULTS, server/faults.py); ``in_process`` runs the app on a thread
    of this process instead of a `stealth serve` subprocess (the suite's tests).
    """
    roles = sorted({role for t in tiers for role in RUNS[t] if role})
    with tempfile.TemporaryDirectory(prefix="stealth-conformance-") as tmp:
        env = sandbox_env(Path(tmp), faults=faults, rate_limit=rate_limit)
        ports = {t: free_port() for t in tiers}
        hooks = {RUNS[t][0]: f"http://127.0.0.1:{ports[t]}/webhooks" for t in tiers}
        partners = provision(env, roles, hooks)
        server = sandbox_in_process(env, free_port()) if in_process else sandbox(env, free_port(), log_path)
        with server as base:
            yield LocalSandbox(base, partners, ports, env["STEALTH_DATABASE_URL"], Path(tmp))


def scan_sandbox_log(sb: LocalSandbox, log_path: Path, report_dir: Path) -> bool:
    """Scan the sandbox's log for every PHI value the runs sent, received (each run left them in the sandbox's
    scratch directory, never in a report) or the sandbox stored; write phi-log-scan.json (counts only)."""
    from conformance.phi_scan import PhiValues, scan_logs, spec_constants
    from server.config import DEFAULT_SPEC_DIR
    from server.redaction import PhiMap
    from server.spec import load_spec

    document = load_spec(DEFAULT_SPEC_DIR)
    phi = PhiValues(PhiMap(document), spec_constants(document))
    for path in sorted((sb.scratch or Path("/nonexistent")).glob("phi-values-*.json")):
        seen = json.loads(path.read_text(encoding="utf-8"))
        phi.phi |= set(seen["phi"])
        phi.non_phi |= set(seen["non_phi"])
        phi.public |= set(seen["public"])
    searched, found = scan_logs(sb.database_url, [log_path], document, phi)
    size = log_path.stat().st_size if log_path.is_file() else 0
    result = {
        "log": log_path.name,
        "log_bytes": size,
        "phi_values_searched": searched,
        "phi_values_found": len(found),
    }
    (report_dir / "phi-log-scan.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"== PHI log scan: {len(found)} of {searched} PHI values the run sent, received or stored found in "
        f"{log_path} ({size} bytes)",
        flush=True,
    )
    return not found and searched > 0


def run_parallel(runs: dict[str, list[str]], env: dict[str, dict[str, str]] | None = None) -> dict[str, int]:
    """One `python -m conformance` process per tier at once, each line of output prefixed with its tier.

    The tiers' runs share nothing but the sandbox (own partners, receivers, clocks and rate-limit windows).
    """
    import threading

    procs = {
        tier: subprocess.Popen(
            [sys.executable, "-m", "conformance", *run],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=(env or {}).get(tier),
        )
        for tier, run in runs.items()
    }
    width = max(len(t) for t in runs)
    lock = threading.Lock()

    def pump(tier: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with lock:
                print(f"{tier:<{width}} | {line.rstrip()}", flush=True)

    threads = [threading.Thread(target=pump, args=item, daemon=True) for item in procs.items()]
    for t in threads:
        t.start()
    codes = {tier: proc.wait() for tier, proc in procs.items()}
    for t in threads:
        t.join(timeout=5)
    return codes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiers", default="referral", help="comma-separated tiers to run (default: referral)"
    )
    parser.add_argument("--quick", action="store_true", help="reduced fuzzing budget (make test)")
    parser.add_argument("--report-dir", type=Path, default=REPO / "build" / "conformance")
    parser.add_argument("--spec-dir", type=Path, default=REPO / "build" / "openapi")
    args = parser.parse_args(argv)
    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
    unknown = [t for t in tiers if t not in RUNS]
    if unknown:
        parser.error(f"unknown tier(s) {', '.join(unknown)}; known: {', '.join(RUNS)}")
    args.report_dir.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    started = time.monotonic()
    with local_sandbox(tiers, args.report_dir / "sandbox.log") as sb:
        runs = {}
        for tier in tiers:
            run = sb.run_args(tier, args.report_dir / tier, args.spec_dir / "partner-api.json")
            if args.quick:
                run += ["--fuzz-max-examples", "3", "--fuzz-phases", "examples,coverage"]
            runs[tier] = run
        print(f"== conformance: {', '.join(tiers)} in parallel against {sb.base_url}", flush=True)
        envs = {t: {**os.environ, PHI_OUT_ENV: str(sb.scratch / f"phi-values-{t}.json")} for t in tiers}
        for tier, code in run_parallel(runs, envs).items():
            if code != 0:
                failed.append(f"{tier} (exit {code})")
        if not scan_sandbox_log(sb, args.report_dir / "sandbox.log", args.report_dir):
            failed.append("PHI in the sandbox log")
    print(
        f"== conformance: {len(tiers)} tier run(s) in {time.monotonic() - started:.0f} s; "
        f"reports in {args.report_dir}"
    )
    if failed:
        print("== conformance FAILED: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
