"""Benchmark databases (a SQLite file, and PostgreSQL databases of our own) and their seed data."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet

from server.config import Settings

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str | None:
    """BENCH_POSTGRES_URL, else the tests' STEALTH_TEST_POSTGRES_URL, else the local default if it answers."""
    url = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("STEALTH_TEST_POSTGRES_URL") or DEFAULT_PG
    try:
        with psycopg.connect(plain(url), connect_timeout=3):
            return url
    except psycopg.Error:
        return None


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def with_database(url: str, name: str) -> str:
    return re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", url, count=1) if "://" in url else url


def recreate_pg_database(admin_url: str, name: str) -> str:
    """Drop and create database ``name``; returns its SQLAlchemy URL."""
    assert re.fullmatch(r"[a-z0-9_]+", name)
    with psycopg.connect(plain(admin_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return with_database(admin_url, name)


def pg_database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(plain(admin_url), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def drop_pg_database(admin_url: str, name: str) -> None:
    with psycopg.connect(plain(admin_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass(frozen=True)
class Target:
    """One database the runs use: its label (sqlite / postgresql), URL and state directory."""

    label: str
    url: str
    state_dir: Path
    secret_key: str

    def settings(self) -> Settings:
        return Settings(
            database_url=self.url,
            state_dir=self.state_dir,
            environment="sandbox",
            rate_limit_per_minute=1_000_000_000,
            secret_key=self.secret_key,
        )

    def server_env(self, *, response_validation: bool = True) -> dict[str, str]:
        return {
            "STEALTH_DATABASE_URL": self.url,
            "STEALTH_STATE_DIR": str(self.state_dir),
            "STEALTH_SECRET_KEY": self.secret_key,
            "STEALTH_ENVIRONMENT": "sandbox",
            "STEALTH_RATE_LIMIT_PER_MINUTE": "1000000000",  # raised for the run; the limiter still counts
            "STEALTH_RESPONSE_VALIDATION": "1" if response_validation else "0",
            "STEALTH_BACKGROUND_JOBS": "0",  # the API alone: no runner thread competing for the cores
            "STEALTH_REDIS_URL": os.environ.get("BENCH_REDIS_URL", ""),
        }


def targets(work: Path, want: list[str], prefix: str = "stealth_bench") -> list[Target]:
    key = Fernet.generate_key().decode()
    out: list[Target] = []
    if "sqlite" in want:
        path = work / "sqlite" / "bench.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        out.append(Target("sqlite", f"sqlite:///{path}", work / "sqlite" / "state", key))
    if "postgresql" in want:
        admin = postgres_admin_url()
        if admin is None:
            print("bench: PostgreSQL not reachable; its rows are skipped", flush=True)
        else:
            url = recreate_pg_database(admin, prefix)
            out.append(Target("postgresql", url, work / "postgresql" / "state", key))
    return out
