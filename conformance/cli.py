"""`conformance run ...` and `conformance receiver ...` (mounted as `stealth conformance` by the server CLI).

Options can also come from a config file (``--config FILE``, YAML or TOML) whose string values may use
``${ENV_VAR}`` or ``${ENV_VAR:-default}``; command-line options win over the file. Keys are the long option
names with dashes or underscores, e.g.::

    base_url: https://sandbox.stealth.health
    partner_id: ptr_acme_health
    api_key: ${STEALTH_API_KEY}
    tier: referral
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .report import EXIT_CONFIG

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    pass


def substitute_env(value: Any, environ: dict[str, str] | None = None) -> Any:
    environ = dict(os.environ) if environ is None else environ
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"environment variable {name} is not set (used as ${{{name}}} in the config file)"
            )

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, environ) for v in value]
    return value


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> dict[str, Any]:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    data = tomllib.loads(text) if p.suffix == ".toml" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options")
    data = data.get("conformance", data)
    return {k.replace("-", "_"): v for k, v in substitute_env(data, environ).items()}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="conformance", description="Stealth Health Partner API conformance suite"
    )
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="check a deployment against the spec and the seeds' requirements")
    r.add_argument("--config", help="YAML or TOML file with these options (${ENV} substituted)")
    r.add_argument("--base-url")
    r.add_argument("--partner-id")
    r.add_argument("--api-key")
    r.add_argument("--tier", choices=["referral", "clinical", "prescriber"])
    r.add_argument("--second-partner-id")
    r.add_argument("--second-api-key")
    r.add_argument(
        "--second-tier",
        choices=["referral", "clinical", "prescriber"],
        help="tier of the second partner's key (default: --tier)",
    )
    r.add_argument(
        "--referral-partner-id",
        help="a referral-tier partner for tier enforcement and PHI checks when neither partner above is one",
    )
    r.add_argument("--referral-api-key")
    r.add_argument("--webhook-listen", help="HOST:PORT for the suite's webhook receiver")
    r.add_argument(
        "--webhook-public-url", help="the URL the deployment delivers to (the partner's webhook URL)"
    )
    r.add_argument("--webhook-secret", help="the partner's whsec_ signing secret")
    r.add_argument(
        "--webhook-wait", type=float, dest="webhook_wait_s", help="seconds to wait for a delivery (20)"
    )
    r.add_argument(
        "--webhook-quiet",
        type=float,
        dest="webhook_quiet_s",
        help="seconds to watch for a delivery that must not come, e.g. an early retry (1.5)",
    )
    r.add_argument("--report-dir")
    r.add_argument(
        "--allow-writes",
        action="store_true",
        default=None,
        help="create and change data (needed for most checks)",
    )
    r.add_argument("--max-rps", type=float, help="request rate cap (default: 80%% of X-RateLimit-Limit)")
    r.add_argument(
        "--burst", action="store_true", default=None, help="run the rate-limit burst outside the sandbox"
    )
    r.add_argument("--spec", help="bundled spec (file or URL); default build/openapi/partner-api.json")
    r.add_argument("--environment", choices=["sandbox", "production"], help="default: from the key prefix")
    r.add_argument("--no-fuzz", dest="fuzz", action="store_false", default=None, help="skip schemathesis")
    r.add_argument("--fuzz-max-examples", type=int)
    r.add_argument("--fuzz-phases", help="comma-separated: examples,coverage,fuzzing,stateful")
    r.add_argument("--fuzz-timeout", type=float, dest="fuzz_timeout_s")
    r.add_argument("--only", action="append", help="run only these check ids (prefix* allowed); repeatable")
    r.add_argument(
        "--exclude", action="append", help="leave out these check ids (prefix* allowed); repeatable"
    )
    rc = sub.add_parser(
        "receiver", help="test a partner's own webhook endpoint with signed, forged and duplicate events"
    )
    rc.add_argument("--url", required=True)
    rc.add_argument("--secret", required=True)
    rc.add_argument("--spec")
    rc.add_argument("--tier", choices=["referral", "clinical", "prescriber"], default=None)
    rc.add_argument("--timeout", type=float, default=10.0)
    rc.add_argument("--report-dir")
    return ap


def _run_config(ns: argparse.Namespace) -> Any:
    from .runner import RunConfig

    values: dict[str, Any] = {}
    if ns.config:
        values.update(load_config(ns.config))
    for key, val in vars(ns).items():
        if key in ("command", "config") or val is None:
            continue
        values[key] = val
    if isinstance(values.get("fuzz_phases"), str):
        values["fuzz_phases"] = tuple(x.strip() for x in values["fuzz_phases"].split(",") if x.strip())
    missing = [k for k in ("base_url", "partner_id", "api_key") if not values.get(k)]
    if missing:
        raise ConfigError("missing " + ", ".join("--" + m.replace("_", "-") for m in missing))
    known = set(RunConfig.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) in the config: {', '.join(unknown)}")
    return RunConfig(**values)


def _record_phi_values(path: Path) -> None:
    from server.config import DEFAULT_SPEC_DIR
    from server.redaction import PhiMap
    from server.spec import load_spec

    from . import runner
    from .phi_scan import PhiValues, add_exchanges, spec_constants

    document = load_spec(DEFAULT_SPEC_DIR)
    phi = PhiValues(PhiMap(document), spec_constants(document))

    def observe(exchanges: list[Any]) -> None:
        add_exchanges(phi, exchanges)
        seen = {"phi": sorted(phi.phi), "non_phi": sorted(phi.non_phi), "public": sorted(phi.public)}
        path.write_text(json.dumps(seen), encoding="utf-8")

    runner.EXCHANGE_OBSERVERS.append(observe)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # `stealth conformance --base-url ...` (issue #8 syntax) means `run`.
    if args and args[0] not in ("run", "receiver", "-h", "--help"):
        args.insert(0, "run")
    ns = _parser().parse_args(args)
    if ns.command == "receiver":
        from .partner_receiver import main_receiver

        return main_receiver(ns)
    from .runner import run

    phi_out = os.environ.get("STEALTH_CONFORMANCE_PHI_OUT")
    if phi_out:  # conformance.local's PHI log scan: what this run sent and received, before any redaction
        _record_phi_values(Path(phi_out))
    try:
        cfg = _run_config(ns)
        code, _data = run(cfg)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"conformance: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
