"""The check framework: each check has an id, the requirement ids it verifies, where it applies, and a function.

A check function receives the run ``Context`` and its own ``CheckResult`` and records findings on it:
``res.ok(...)`` (an assertion held), ``res.fail(...)`` (a deviation, with the exchange that shows it),
``res.skip(...)`` (could not verify: blocks a pass) or ``res.omit(...)`` (does not apply). The final status is
fail if anything failed, else skip if anything was skipped, else pass if anything passed, else omit.
"""

from __future__ import annotations

import enum
import secrets
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..http import ApiClient, Credentials, Exchange
from ..spec import Spec

if TYPE_CHECKING:
    from ..receiver import WebhookReceiver


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    OMIT = "omit"


@dataclass
class Finding:
    status: Status
    message: str
    exchanges: list[Exchange] = field(default_factory=list)
    data: dict[str, Any] | None = None


@dataclass
class CheckResult:
    check_id: str
    title: str
    requirements: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    duration_s: float = 0.0
    passes: int = 0

    def ok(self, message: str | None = None, *exchanges: Exchange) -> None:
        self.passes += 1
        if message:
            self.findings.append(Finding(Status.PASS, message, list(exchanges)))

    def fail(self, message: str, *exchanges: Exchange, data: dict[str, Any] | None = None) -> None:
        self.findings.append(Finding(Status.FAIL, message, [e for e in exchanges if e is not None], data))

    def skip(self, message: str) -> None:
        self.findings.append(Finding(Status.SKIP, message))

    def omit(self, message: str) -> None:
        self.findings.append(Finding(Status.OMIT, message))

    def expect(self, cond: bool, message: str, *exchanges: Exchange) -> bool:
        if cond:
            self.passes += 1
        else:
            self.fail(message, *exchanges)
        return cond

    @property
    def status(self) -> Status:
        kinds = {f.status for f in self.findings}
        if Status.FAIL in kinds:
            return Status.FAIL
        if Status.SKIP in kinds:
            return Status.SKIP
        if self.passes or Status.PASS in kinds:
            return Status.PASS
        return Status.OMIT

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.FAIL]

    def reason(self) -> str:
        for kind in (Status.FAIL, Status.SKIP, Status.OMIT, Status.PASS):
            msgs = [f.message for f in self.findings if f.status is kind]
            if msgs:
                more = f" (+{len(msgs) - 1} more)" if len(msgs) > 1 else ""
                return msgs[0] + more
        return f"{self.passes} assertion(s) held"


CheckFunc = Callable[["Context", CheckResult], None]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    requirements: tuple[str, ...]
    func: CheckFunc | None
    writes: bool = False
    sandbox_only: bool = False
    tiers: frozenset[str] | None = None  # None: every tier
    needs: tuple[str, ...] = ()  # "second", "webhooks", "referral_key", "clinical_key"
    phase: str = "active"  # "preflight", "active", "fuzz", "late", "observe", "partner"
    opt_in_production: bool = False  # runs outside the sandbox only with --burst


REGISTRY: dict[str, Check] = {}


def check(
    id: str,
    title: str,
    requirements: list[str] | tuple[str, ...],
    *,
    writes: bool = False,
    sandbox_only: bool = False,
    tiers: list[str] | None = None,
    needs: tuple[str, ...] = (),
    phase: str = "active",
    opt_in_production: bool = False,
) -> Callable[[CheckFunc], CheckFunc]:
    def deco(func: CheckFunc) -> CheckFunc:
        if id in REGISTRY:
            raise ValueError(f"duplicate check id {id}")
        REGISTRY[id] = Check(
            id,
            title,
            tuple(requirements),
            func,
            writes,
            sandbox_only,
            frozenset(tiers) if tiers else None,
            needs,
            phase,
            opt_in_production,
        )
        return func

    return deco


def declare(id: str, title: str, requirements: list[str], *, phase: str, **kw: Any) -> None:
    """Register a check implemented elsewhere (schemathesis checks, partner-receiver checks)."""
    if id not in REGISTRY:
        REGISTRY[id] = Check(id, title, tuple(requirements), None, phase=phase, **kw)


@dataclass
class Context:
    spec: Spec
    client: ApiClient
    primary: Credentials
    second: Credentials | None
    tier: str
    environment: str  # "sandbox" | "production"
    allow_writes: bool
    burst: bool = False
    receiver: WebhookReceiver | None = None
    referral_key: Credentials | None = (
        None  # tier enforcement / PHI probes when neither partner is referral-tier
    )
    webhook_wait_s: float = 20.0
    webhook_quiet_s: float = 1.5
    # Objects created by this run, by kind ("referrals" ...): the JSON of the create response and the credential.
    created: dict[str, list[tuple[dict[str, Any], Credentials]]] = field(default_factory=dict)
    run_tag: str = field(default_factory=lambda: "conf" + secrets.token_hex(4))
    notes: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def sandbox(self) -> bool:
        return self.environment == "sandbox"

    def op(self, operation_id: str) -> Any:
        return self.spec.by_id.get(operation_id)

    def creds_of_tier(self, tier: str) -> Credentials | None:
        for c in self.all_credentials():
            if c.tier == tier:
                return c
        return None

    def all_credentials(self) -> list[Credentials]:
        return [c for c in (self.primary, self.second, self.referral_key) if c is not None]

    def fresh_reference(self, hint: str = "") -> str:
        return f"{self.run_tag}-{hint}{secrets.token_hex(4)}"


def run_check(chk: Check, ctx: Context) -> CheckResult:
    res = CheckResult(chk.id, chk.title, chk.requirements)
    started = time.monotonic()
    reason = applicability(chk, ctx)
    if reason is not None:
        status, msg = reason
        (res.omit if status is Status.OMIT else res.skip)(msg)
    elif chk.func is not None:
        ctx.client.source = f"check:{chk.id}"
        try:
            chk.func(ctx, res)
        except Exception as exc:  # a crashing check could not verify its requirements
            res.skip(f"check crashed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
        finally:
            ctx.client.source = ""
    res.duration_s = time.monotonic() - started
    return res


def applicability(chk: Check, ctx: Context) -> tuple[Status, str] | None:
    if chk.tiers is not None and ctx.tier not in chk.tiers:
        return Status.OMIT, f"applies to tier(s) {', '.join(sorted(chk.tiers))}, not {ctx.tier}"
    if chk.sandbox_only and not ctx.sandbox:
        return Status.OMIT, "sandbox-only check; the target is production"
    if chk.writes and not ctx.allow_writes:
        return Status.OMIT, "writes data; read-only run (pass --allow-writes to include it)"
    if chk.opt_in_production and not ctx.sandbox and not ctx.burst:
        return Status.OMIT, "opt-in outside the sandbox (pass --burst to include it)"
    if "second" in chk.needs and ctx.second is None:
        return Status.SKIP, "needs a second partner (--second-partner-id / --second-api-key)"
    if "webhooks" in chk.needs and ctx.receiver is None:
        return (
            Status.SKIP,
            "needs the webhook receiver (--webhook-listen, --webhook-public-url, --webhook-secret)",
        )
    if "referral_key" in chk.needs and ctx.creds_of_tier("referral") is None:
        return Status.SKIP, "needs a referral-tier key (primary or second partner)"
    if "clinical_key" in chk.needs and ctx.creds_of_tier("clinical") is None:
        return Status.OMIT, "needs a clinical-tier key"
    return None


def load_all() -> dict[str, Check]:
    """Import every check module (registration happens at import) and return the registry."""
    from .. import fuzz, partner_receiver  # noqa: F401
    from . import (  # noqa: F401
        auth,
        clinical,
        errors,
        ids,
        isolation,
        lifecycle,
        phi,
        preflight,
        ratelimit,
        referrals,
        state,
        webhooks,
    )

    return REGISTRY
