"""Run the conformance suite against a fresh local sandbox (what `make conformance` does).

Starts `stealth serve` on a throwaway SQLite database, provisions the partners the suite needs
(two referral-tier partners, one clinical, one prescriber, webhooks pointed at the suite's receiver),
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
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
# The suite caps itself at 80% of the limit and its burst check sends limit + 20 requests,
# so the limit is high enough for a quick run and low enough for the burst to finish in seconds.
RATE_LIMIT = 1200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stealth(env: dict[str, str], *args: str) -> dict[str, str]:
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
    return json.loads(out.stdout)


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


def phi_collector() -> Any:
    """A PhiValues fed with every exchange of the suite's runs (registered as a runner observer)."""
    from conformance import runner
    from conformance.phi_scan import PhiValues, add_exchanges, spec_constants
    from server.config import DEFAULT_SPEC_DIR
    from server.redaction import PhiMap
    from server.spec import load_spec

    document = load_spec(DEFAULT_SPEC_DIR)
    phi = PhiValues(PhiMap(document), spec_constants(document))
    runner.EXCHANGE_OBSERVERS.append(lambda exchanges: add_exchanges(phi, exchanges))
    return phi


def scan_sandbox_log(database_url: str, report_dir: Path, phi: Any) -> bool:
    """Scan the sandbox's log for every PHI value the run sent, received or stored; write phi-log-scan.json."""
    from conformance.phi_scan import scan_logs
    from server.config import DEFAULT_SPEC_DIR
    from server.spec import load_spec

    log_path = report_dir / "sandbox.log"
    searched, found = scan_logs(database_url, [log_path], load_spec(DEFAULT_SPEC_DIR), phi)
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

    with tempfile.TemporaryDirectory(prefix="stealth-conformance-") as tmp:
        state = Path(tmp)
        env = {
            **os.environ,
            "STEALTH_STATE_DIR": str(state / ".stealth"),
            "STEALTH_DATABASE_URL": f"sqlite:///{state / 'sandbox.db'}",
            "STEALTH_ENVIRONMENT": "sandbox",
            "STEALTH_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT),
            "STEALTH_AUTO_ADVANCE_SECONDS": "0",
            "STEALTH_BACKGROUND_JOBS": "1",
            # Redacted bodies and webhook payloads in the log, scanned for the run's PHI afterwards (phi_scan).
            # INFO, not DEBUG: DEBUG's volume slows the server enough to starve the 30 s rate-limit burst check
            # (tests/server/test_phi_logs.py proves the DEBUG case).
            "STEALTH_LOG_BODIES": "1",
            "STEALTH_LOG_LEVEL": "info",
        }
        env.pop("STEALTH_REDIS_URL", None)
        receiver_port = free_port()
        hook_url = f"http://127.0.0.1:{receiver_port}/webhooks"
        partners = {
            "referral": stealth(
                env,
                "partner",
                "create",
                "--tier",
                "referral",
                "--name",
                "Conformance A",
                "--webhook-url",
                hook_url,
            ),
            "second": stealth(env, "partner", "create", "--tier", "referral", "--name", "Conformance B"),
            "clinical": stealth(
                env,
                "partner",
                "create",
                "--tier",
                "clinical",
                "--name",
                "Conformance C",
                "--webhook-url",
                hook_url,
            ),
            "prescriber": stealth(
                env,
                "partner",
                "create",
                "--tier",
                "prescriber",
                "--name",
                "Conformance D",
                "--webhook-url",
                hook_url,
            ),
        }
        port = free_port()
        args.report_dir.mkdir(parents=True, exist_ok=True)
        failed: list[str] = []
        started = time.monotonic()
        phi = phi_collector()
        with sandbox(env, port, args.report_dir / "sandbox.log") as base:
            from conformance.cli import main as conformance_main

            for tier in tiers:
                primary, second = partners[tier], partners["second"]
                # The full bundle: the suite derives the tier's subset itself and still needs the sandbox controls.
                spec = args.spec_dir / "partner-api.json"
                run = [
                    "run",
                    "--base-url",
                    base,
                    "--partner-id",
                    primary["partner_id"],
                    "--api-key",
                    primary["api_key"],
                    "--tier",
                    tier,
                    "--second-partner-id",
                    second["partner_id"],
                    "--second-api-key",
                    second["api_key"],
                    "--second-tier",
                    "referral",
                    "--webhook-listen",
                    f"127.0.0.1:{receiver_port}",
                    "--webhook-public-url",
                    hook_url,
                    "--webhook-secret",
                    primary["webhook_secret"],
                    "--report-dir",
                    str(args.report_dir / tier),
                    "--allow-writes",
                ]
                if spec.is_file():
                    run += ["--spec", str(spec)]
                if args.quick:
                    run += ["--fuzz-max-examples", "3", "--fuzz-phases", "examples,coverage"]
                print(f"== conformance: {tier} tier against {base}", flush=True)
                code = conformance_main(run)
                if code != 0:
                    failed.append(f"{tier} (exit {code})")
        print(
            f"== conformance: {len(tiers)} tier run(s) in {time.monotonic() - started:.0f} s; "
            f"reports in {args.report_dir}"
        )
        if not scan_sandbox_log(env["STEALTH_DATABASE_URL"], args.report_dir, phi):
            failed.append("PHI in the sandbox log")
        if failed:
            print("== conformance FAILED: " + ", ".join(failed), file=sys.stderr)
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
