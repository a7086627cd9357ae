"""Part 1: sandbox GET/list/POST against response-validation-off, bare Starlette and Prism's mock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import loadgen, procs, wrk
from bench.dbsetup import Target
from server.app import build_state
from server.auth import AuthenticatedPartner
from server.repositories import partners as partners_repo
from server.services.partners import create_partner
from server.services.referrals import ReferralService

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Seeded:
    partner_id: str
    api_key: str
    referral_ids: list[str]
    category: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Partner-ID": self.partner_id, "X-Api-Key": self.api_key}


def seed(target: Target, referrals: int = 120) -> Seeded:
    """A referral-tier partner with ``referrals`` referrals (made by the service, as the API makes them)."""
    state = build_state(target.settings())
    try:
        creds = create_partner(
            state.db, state.box, tier="referral", environment="sandbox", name="Bench Partner"
        )
        with state.db.session() as session:
            partner = partners_repo.get(session, creds.partner_id)
            assert partner is not None
            category = partners_repo.products(session, creds.partner_id)[0].category
            who = AuthenticatedPartner(
                partner.id, partner.slug, partner.name, partner.tier, partner.environment, 0.0, None
            )
        service = ReferralService(state)
        ids = [
            service.create(who, {"partner_reference": f"seed_{i}", "product_category": category}).referral.id
            for i in range(referrals)
        ]
    finally:
        state.db.dispose()
    return Seeded(creds.partner_id, creds.api_key, ids, category)


def _post_template(category: str) -> str:
    return json.dumps({"partner_reference": "%s", "product_category": category}, separators=(",", ":"))


def measure(
    port: int,
    seeded: Seeded,
    endpoint: str,
    *,
    duration: float,
    connections: int,
    use_wrk: bool,
) -> dict[str, Any]:
    """Closed-loop throughput and latency of one endpoint (wrk when available, else our generator)."""
    headers = dict(seeded.headers)
    prefix = f"b{secrets.token_hex(4)}_"
    path = {
        "get": f"/partner/referrals/{seeded.referral_ids[0]}",
        "list": "/partner/referrals?limit=50",
        "post": "/partner/referrals",
    }[endpoint]
    template = _post_template(seeded.category) if endpoint == "post" else None
    if template is not None:
        headers["Content-Type"] = "application/json"
    if use_wrk:
        out = wrk.run(
            f"http://{HOST}:{port}{path}",
            headers=headers,
            threads=2,
            connections=connections,
            duration=duration,
            post_template=template,
            unique_prefix=prefix,
        )
        out["generator"] = "wrk"
        return out
    method = "POST" if template else "GET"

    def make(n: int) -> bytes:
        body = (template % f"{prefix}{n}").encode() if template else b""
        return loadgen.build_request(method, path, f"{HOST}:{port}", headers, body)

    result = asyncio.run(
        loadgen.closed_loop(
            HOST, port, make, connections=connections, duration=duration, warmup=min(1.0, duration)
        )
    )
    out = result.summary()
    out["generator"] = "asyncio"
    return out


def fixed_rate(port: int, seeded: Seeded, *, rate: float, duration: float) -> dict[str, Any]:
    path = f"/partner/referrals/{seeded.referral_ids[0]}"

    def make(_n: int) -> bytes:
        return loadgen.build_request("GET", path, f"{HOST}:{port}", seeded.headers)

    result = asyncio.run(loadgen.fixed_rate(HOST, port, make, rate=rate, duration=duration))
    out = result.summary()
    out["offered_rps"] = rate
    out["generator"] = "asyncio"
    return out


def warm(port: int, seeded: Seeded) -> None:
    """A few requests of each kind so first-call costs (imports, compiled schemas) are not measured."""

    async def go() -> None:
        for endpoint_path in (f"/partner/referrals/{seeded.referral_ids[0]}", "/partner/referrals?limit=50"):

            def make(_n: int, p: str = endpoint_path) -> bytes:
                return loadgen.build_request("GET", p, f"{HOST}:{port}", seeded.headers)

            await loadgen.closed_loop(HOST, port, make, connections=2, duration=0.3, warmup=0.0)

    asyncio.run(go())


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _merge(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one variant/endpoint: medians of rps, p50 and p99; counts summed."""
    out: dict[str, Any] = {
        "requests": sum(int(r["requests"]) for r in slices),
        "rps": round(_median([float(r["rps"]) for r in slices]), 1),
        "p50_ms": round(_median([float(r["p50_ms"]) for r in slices]), 2),
        "p99_ms": round(_median([float(r["p99_ms"]) for r in slices]), 2),
        "errors": sum(int(r.get("errors", 0)) for r in slices),
        "rounds_rps": [r["rps"] for r in slices],
        "generator": slices[0]["generator"],
    }
    if "non_2xx" in slices[0]:
        out["non_2xx"] = sum(int(r["non_2xx"]) for r in slices)
    if "statuses" in slices[0]:
        statuses: dict[str, int] = {}
        for r in slices:
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        out["statuses"] = statuses
    return out


def _variants(target: Target, n: int) -> list[tuple[str, list[str], dict[str, str], list[str]]]:
    return [
        (
            "sandbox",
            procs.uvicorn_cmd("server.app:app_from_env", 0, n),
            target.server_env(),
            ["get", "list", "post"],
        ),
        (
            "sandbox_no_response_validation",
            procs.uvicorn_cmd("server.app:app_from_env", 0, n),
            target.server_env(response_validation=False),
            ["get", "list", "post"],
        ),
        (
            "bare_starlette",
            procs.uvicorn_cmd("bench.bare_app:app_from_env", 0, n),
            target.server_env(),
            ["get"],
        ),
    ]


def run(
    targets: list[Target],
    seeds: dict[str, Seeded],
    *,
    workers: list[int],
    duration: float,
    connections: int,
    fixed_rps: float,
    fixed_duration: float,
    with_prism: bool,
    logs: Path,
    use_wrk: bool,
    rounds: int = 3,
) -> list[dict[str, Any]]:
    """Per database and worker count, all variants run at once and are measured in interleaved rounds
    (A, B, C, A, B, C, ...): on a shared machine the load drifts, and interleaving spreads the drift
    over every variant instead of handing it to whichever ran last."""
    rows: list[dict[str, Any]] = []
    slice_seconds = max(1.0, duration / rounds)
    with contextlib.ExitStack() as prism_stack:
        prism_port: int | None = None
        if with_prism and targets:
            port = procs.free_port()
            try:
                prism_stack.enter_context(procs.process(procs.prism_cmd(port), {}, port, logs / "prism.log"))
                prism_port = port
            except (RuntimeError, TimeoutError) as exc:  # recorded, not fatal: the other rows stand
                print(f"bench http prism: did not start ({exc}); see {logs / 'prism.log'}", flush=True)
        for target in targets:
            seeded = seeds[target.label]
            for n in workers:
                with contextlib.ExitStack() as stack:
                    ports: dict[str, int] = {}
                    plan: list[tuple[str, str]] = []
                    for name, cmd, env, endpoints in _variants(target, n):
                        port = procs.free_port()
                        cmd = [*cmd[: cmd.index("--port") + 1], str(port), *cmd[cmd.index("--port") + 2 :]]
                        stack.enter_context(
                            procs.process(cmd, env, port, logs / f"{name}-{target.label}-{n}.log")
                        )
                        ports[name] = port
                        plan += [(name, e) for e in endpoints]
                    if prism_port is not None:
                        ports["prism_mock"] = prism_port
                        plan += [("prism_mock", e) for e in ("get", "list", "post")]
                    for port in ports.values():
                        warm(port, seeded)
                    slices: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in plan}
                    for _ in range(rounds):
                        for name, endpoint in plan:
                            slices[(name, endpoint)].append(
                                measure(
                                    ports[name],
                                    seeded,
                                    endpoint,
                                    duration=slice_seconds,
                                    connections=connections,
                                    use_wrk=use_wrk,
                                )
                            )
                    for (name, endpoint), got in slices.items():
                        out = _merge(got)
                        rows.append(
                            {"server": name, "db": target.label, "workers": n, "endpoint": endpoint, **out}
                        )
                        print(f"bench http {name} {target.label} w={n} {endpoint}: {out}", flush=True)
                    out = fixed_rate(ports["sandbox"], seeded, rate=fixed_rps, duration=fixed_duration)
                    rows.append(
                        {
                            "server": "sandbox",
                            "db": target.label,
                            "workers": n,
                            "endpoint": "get@fixed_rate",
                            **out,
                        }
                    )
                    print(f"bench http sandbox {target.label} w={n} get@{fixed_rps:g}/s: {out}", flush=True)
    return rows
