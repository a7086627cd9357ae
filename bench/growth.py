"""Part 3: list and summary cost at 10 thousand and 1 million referrals for one partner (PostgreSQL).

Each size has a PostgreSQL database of its own (``stealth_bench_growth_<n>``), filled with COPY and
kept between runs while the row count matches (filling 1M takes minutes; a kept one is migrated to head).
Timings are server-side: the operation's handler (service, queries, serialization) called in-process,
after a few untimed calls (WARMUP), then repeated (list pages and the month summary: ``repeat`` times;
all_time, information only, a tenth of it), p50 / p99.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, select

from bench.dbsetup import Target, pg_database_exists, plain, recreate_pg_database, with_database
from server import context
from server.app import build_state
from server.auth import AuthenticatedPartner
from server.cursor import filter_digest
from server.db.engine import Database
from server.db.models import Partner, Referral
from server.handlers.referrals import ReferralHandlers
from server.repositories import partners as partners_repo
from server.repositories.referrals import ListFilters
from server.services.partners import create_partner
from server.state import AppState

SLUG = "bench_growth"
STATUSES = ("enrolled", "pending_review", "approved", "denied", "cancelled", "shipped", "delivered")
SPAN = timedelta(days=3 * 365)


def _ready(url: str, count: int) -> bool:
    with psycopg.connect(plain(url)) as conn:
        try:
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            row = conn.execute(
                "SELECT count(*) FROM referrals r JOIN partners p ON p.id = r.partner_id WHERE p.slug = %s",
                (SLUG,),
            ).fetchone()
        except psycopg.Error:
            return False
    return bool(version and row and row[0] == count)


def _fill(state: AppState, partner_id: str, category: str, count: int) -> None:
    newest = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    step = SPAN / count
    url = plain(state.db.url)
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            with cur.copy(
                "COPY referrals (id, partner_id, partner_reference, product_category, status, metadata, "
                "request_fingerprint, created_at, updated_at, expires_at) FROM STDIN"
            ) as copy:
                for i in range(count):
                    at = newest - step * i
                    rid = f"ref_g{i:012d}"
                    copy.write_row(
                        (
                            rid,
                            partner_id,
                            f"g_{i}",
                            category,
                            STATUSES[i % len(STATUSES)],
                            "{}",
                            hashlib.sha256(rid.encode()).hexdigest(),
                            at,
                            at,
                            at + timedelta(days=7),
                        )
                    )
            with cur.copy(
                "COPY referral_status_history (referral_id, partner_id, status, at, product_category) "
                "FROM STDIN"
            ) as copy:
                for i in range(count):
                    copy.write_row(
                        (
                            f"ref_g{i:012d}",
                            partner_id,
                            STATUSES[i % len(STATUSES)],
                            newest - step * i,
                            category,
                        )
                    )
            with cur.copy(
                "COPY payments (referral_id, partner_id, status, amount_cents, currency, paid_at) FROM STDIN"
            ) as copy:
                for i in range(count):
                    paid = STATUSES[i % len(STATUSES)] in ("approved", "shipped", "delivered")
                    copy.write_row(
                        (
                            f"ref_g{i:012d}",
                            partner_id,
                            "paid" if paid else "not_due",
                            9900 if paid else None,
                            "USD",
                            newest - step * i + timedelta(hours=1) if paid else None,
                        )
                    )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def prepare(admin_url: str, count: int, work: Path, key: str, prefix: str) -> tuple[Target, float]:
    """The database for ``count`` referrals (reused when complete); seconds spent filling (0 if reused)."""
    name = f"{prefix}_growth_{count}"
    url = with_database(admin_url, name)
    target = Target("postgresql", url, work / f"growth-{count}", key)
    if pg_database_exists(admin_url, name) and _ready(url, count):
        db = Database(url)
        try:
            db.migrate()  # a kept database follows new migrations (indexes) instead of being refilled
            with db.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
        finally:
            db.dispose()
        return target, 0.0
    started = time.perf_counter()
    recreate_pg_database(admin_url, name)
    state = build_state(target.settings())
    try:
        creds = create_partner(
            state.db, state.box, tier="referral", environment="sandbox", name="Bench Growth", slug=SLUG
        )
        with state.db.session() as session:
            category = partners_repo.products(session, creds.partner_id)[0].category
        _fill(state, creds.partner_id, category, count)
    finally:
        state.db.dispose()
    return target, time.perf_counter() - started


WARMUP = 5  # untimed calls first: statements built and prepared, caches filled (a server's steady state)


def _timed(fn: Any, repeat: int) -> dict[str, float]:
    for _ in range(WARMUP):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(samples[len(samples) // 2], 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "repeat": repeat,
        "warmup": WARMUP,
    }


def measure(target: Target, count: int, repeat: int) -> dict[str, Any]:
    # The cursor key derives from the secret key, which must be the one the data was written with:
    # the partner rows hold only hashes, so any key works for reading, and cursors are made here.
    state = build_state(target.settings())
    try:
        with state.db.session() as session:
            partner = session.scalar(select(Partner).where(Partner.slug == SLUG))
            assert partner is not None
            who = AuthenticatedPartner(
                partner.id, partner.slug, partner.name, partner.tier, partner.environment, 0.0, None
            )
            total = session.scalar(
                select(func.count()).select_from(Referral).where(Referral.partner_id == partner.id)
            )
        handlers = ReferralHandlers(state)
        digest = filter_digest("referrals:" + who.id, ListFilters().as_dict())
        cursors: dict[str, str | None] = {"first": None}
        with state.db.session() as session:
            for label, fraction in (("middle", 0.5), ("deep", 0.99)):
                row = session.execute(
                    select(Referral.created_at, Referral.id)
                    .where(Referral.partner_id == who.id)
                    .order_by(Referral.created_at.desc(), Referral.id.desc())
                    .offset(
                        max(0, min(int((total or 0) * fraction), (total or 0) - 51))
                    )  # a full page follows
                    .limit(1)
                ).one()
                cursors[label] = handlers.service.cursors.encode(row[0], row[1], digest)
        ctx = context.RequestContext(request_id="bench", client_ip="127.0.0.1", partner=who)
        token = context.current.set(ctx)
        try:
            out: dict[str, Any] = {"referrals": total}
            for label, cursor in cursors.items():
                body, status = handlers.list_referrals(limit=50, cursor=cursor)  # type: ignore[misc]
                assert status == 200 and len(body["referrals"]) == 50, (label, status)
                out[f"list_{label}"] = _timed(
                    lambda c=cursor: handlers.list_referrals(limit=50, cursor=c), repeat
                )
            out["summary_month"] = _timed(lambda: handlers.get_referral_summary("month"), repeat)
            out["summary_all_time"] = _timed(
                lambda: handlers.get_referral_summary("all_time"), max(3, repeat // 10)
            )
        finally:
            context.current.reset(token)
    finally:
        state.db.dispose()
    return out


def run(
    admin_url: str, sizes: list[int], work: Path, key: str, repeat: int, prefix: str = "stealth_bench"
) -> list[dict[str, Any]]:
    rows = []
    for count in sizes:
        target, fill_seconds = prepare(admin_url, count, work, key, prefix)
        row = {"size": count, "fill_seconds": round(fill_seconds, 1), **measure(target, count, repeat)}
        print(f"bench growth {row}", flush=True)
        rows.append(row)
    return rows
