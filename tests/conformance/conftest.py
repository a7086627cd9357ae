"""Fixtures of the conformance-suite tests: the fixture spec as a bundle and a runner against fake apps."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.runner import RunConfig, run
from tests.conformance.fakeapp import FakePartnerApi, free_port, serve

HERE = Path(__file__).parent

MINI_SPEC = HERE / "fixtures" / "mini-partner-api.yaml"


@pytest.fixture(scope="session")
def mini_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "mini-partner-api.json"
    path.write_text(json.dumps(yaml.safe_load(MINI_SPEC.read_text(encoding="utf-8"))), encoding="utf-8")
    return path


RunFn = Callable[..., tuple[int, dict[str, Any], str]]


@pytest.fixture
def run_fake(mini_bundle: Path, tmp_path: Path) -> RunFn:
    """Run the suite against a FakePartnerApi with the given faults; returns (exit code, report JSON, terminal)."""

    def _run(
        faults: set[str] | None = None,
        *,
        fuzz: bool = False,
        only: list[str] | None = None,
        webhooks: bool = True,
        allow_writes: bool = True,
        second: bool = True,
        primary_tier: str = "referral",
        production: bool = False,
        rate_limit: int = 1000,
        **cfg: Any,
    ) -> tuple[int, dict[str, Any], str]:
        app = FakePartnerApi(faults or set(), rate_limit=rate_limit, production=production)
        wport = free_port()
        a = app.add_partner(primary_tier, f"http://127.0.0.1:{wport}/webhooks" if webhooks else None)
        b = app.add_partner("referral")
        out = io.StringIO()
        with serve(app) as url:
            config = RunConfig(
                base_url=url,
                partner_id=a.partner_id,
                api_key=a.api_key,
                tier=primary_tier,
                second_tier="referral",
                second_partner_id=b.partner_id if second else None,
                second_api_key=b.api_key if second else None,
                webhook_listen=f"127.0.0.1:{wport}" if webhooks else None,
                webhook_secret=a.secret,
                webhook_wait_s=5,
                webhook_quiet_s=0.4,
                report_dir=str(tmp_path / "report"),
                allow_writes=allow_writes,
                max_rps=400,
                spec=str(mini_bundle),
                fuzz=fuzz,
                only=only or [],
                fuzz_max_examples=cfg.pop("fuzz_max_examples", 3),
                **cfg,
            )
            code, data = run(config, out=out)
        return code, data, out.getvalue()

    return _run


def statuses(data: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in data["checks"]}
