"""Part 1: sandbox GET/list/POST against response-validation-off, bare Starlette and Prism's mock."""

from __future__ import annotations

import asyncio
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
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for target in targets:
        seeded = seeds[target.label]
        for n in workers:
            variants: list[tuple[str, list[str], dict[str, str], list[str]]] = [
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
            for name, cmd, env, endpoints in variants:
                port = procs.free_port()
                cmd = [*cmd[: cmd.index("--port") + 1], str(port), *cmd[cmd.index("--port") + 2 :]]
                with procs.process(cmd, env, port, logs / f"{name}-{target.label}-{n}.log"):
                    warm(port, seeded)
                    for endpoint in endpoints:
                        out = measure(
                            port,
                            seeded,
                            endpoint,
                            duration=duration,
                            connections=connections,
                            use_wrk=use_wrk,
                        )
                        rows.append(
                            {"server": name, "db": target.label, "workers": n, "endpoint": endpoint, **out}
                        )
                        print(f"bench http {name} {target.label} w={n} {endpoint}: {out}", flush=True)
                    if name == "sandbox":
                        out = fixed_rate(port, seeded, rate=fixed_rps, duration=fixed_duration)
                        rows.append(
                            {
                                "server": name,
                                "db": target.label,
                                "workers": n,
                                "endpoint": "get@fixed_rate",
                                **out,
                            }
                        )
                        print(
                            f"bench http {name} {target.label} w={n} get@{fixed_rps:g}/s: {out}", flush=True
                        )
    if with_prism and targets:
        seeded = seeds[targets[0].label]
        port = procs.free_port()
        try:
            with procs.process(procs.prism_cmd(port), {}, port, logs / "prism.log"):
                warm(port, seeded)
                for endpoint in ("get", "list", "post"):
                    out = measure(
                        port, seeded, endpoint, duration=duration, connections=connections, use_wrk=use_wrk
                    )
                    rows.append(
                        {"server": "prism_mock", "db": "none", "workers": 1, "endpoint": endpoint, **out}
                    )
                    print(f"bench http prism {endpoint}: {out}", flush=True)
        except (RuntimeError, TimeoutError) as exc:  # recorded, not fatal: the other rows stand
            print(f"bench http prism: did not start ({exc}); see {logs / 'prism.log'}", flush=True)
    return rows
