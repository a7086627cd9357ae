"""Settings read from environment variables (documented in README)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from server import faults

Environment = Literal["sandbox", "production"]
LogFormat = Literal["text", "json"]
LOG_LEVELS = ("debug", "info", "warning", "error")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC_DIR = REPO_ROOT / "spec" / "partner-api"
DEFAULT_PORTAL_DIR = REPO_ROOT / "build" / "portal"


class ConfigError(Exception):
    """A setting is missing or malformed."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"not a boolean: {value!r}")


def _int(name: str, value: str | None, default: int, minimum: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from exc
    if number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {number}")
    return number


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to start; build it with :meth:`from_env` or directly in tests."""

    database_url: str
    state_dir: Path
    environment: Environment = "sandbox"
    redis_url: str | None = None
    port: int = 8080
    host: str = "127.0.0.1"
    rate_limit_per_minute: int = 60
    auto_advance_seconds: int = 60
    response_validation: bool = True
    secret_key: str | None = None
    max_body_bytes: int = 65536
    spec_dir: Path = field(default=DEFAULT_SPEC_DIR)
    allow_missing_spec: bool = False
    public_base_url: str | None = None
    redis_prefix: str = "stealth:rl:"
    portal_dir: Path = field(default=DEFAULT_PORTAL_DIR)
    test_faults: frozenset[str] = frozenset()  # STEALTH_TEST_FAULTS (server/faults.py); never in production
    log_bodies: bool = False
    log_format: LogFormat = "text"
    log_level: str = "info"

    @property
    def base_url(self) -> str:
        """URL the sandbox tells partners to open (enrollment and tracking pages)."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, cwd: Path | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        cwd = cwd or Path.cwd()
        state_dir = Path(env.get("STEALTH_STATE_DIR") or cwd / ".stealth")
        environment = (env.get("STEALTH_ENVIRONMENT") or "sandbox").strip().lower()
        if environment not in ("sandbox", "production"):
            raise ConfigError(f"STEALTH_ENVIRONMENT must be sandbox or production, got {environment!r}")
        default_limit = 60 if environment == "sandbox" else 300
        database_url = env.get("STEALTH_DATABASE_URL") or f"sqlite:///{state_dir / 'sandbox.db'}"
        secret_key = env.get("STEALTH_SECRET_KEY") or None
        if environment == "production" and not secret_key:
            raise ConfigError("STEALTH_SECRET_KEY is required in production (a Fernet key)")
        try:
            test_faults = faults.parse(env.get("STEALTH_TEST_FAULTS"))
        except ValueError as exc:
            raise ConfigError(f"STEALTH_TEST_FAULTS: {exc}") from None
        if test_faults and environment == "production":
            raise ConfigError("STEALTH_TEST_FAULTS is a test-only switch and is refused in production")
        log_format = (env.get("STEALTH_LOG_FORMAT") or "text").strip().lower()
        if log_format not in ("text", "json"):
            raise ConfigError(f"STEALTH_LOG_FORMAT must be text or json, got {log_format!r}")
        log_level = (env.get("STEALTH_LOG_LEVEL") or "info").strip().lower()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"STEALTH_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        return cls(
            database_url=database_url,
            state_dir=state_dir,
            environment=environment,  # type: ignore[arg-type]
            redis_url=env.get("STEALTH_REDIS_URL") or None,
            port=_int("PORT", env.get("PORT"), 8080, minimum=1),
            host=env.get("STEALTH_HOST") or "127.0.0.1",
            rate_limit_per_minute=_int(
                "STEALTH_RATE_LIMIT_PER_MINUTE", env.get("STEALTH_RATE_LIMIT_PER_MINUTE"), default_limit, 1
            ),
            auto_advance_seconds=_int(
                "STEALTH_AUTO_ADVANCE_SECONDS", env.get("STEALTH_AUTO_ADVANCE_SECONDS"), 60
            ),
            response_validation=_bool(env.get("STEALTH_RESPONSE_VALIDATION"), True),
            secret_key=secret_key,
            max_body_bytes=_int("STEALTH_MAX_BODY_BYTES", env.get("STEALTH_MAX_BODY_BYTES"), 65536, 1),
            spec_dir=Path(env.get("STEALTH_SPEC_DIR") or DEFAULT_SPEC_DIR),
            allow_missing_spec=_bool(env.get("STEALTH_SPEC_ALLOW_MISSING"), False),
            public_base_url=env.get("STEALTH_PUBLIC_BASE_URL") or None,
            portal_dir=Path(env.get("STEALTH_PORTAL_DIR") or DEFAULT_PORTAL_DIR),
            test_faults=test_faults,
            log_bodies=_bool(env.get("STEALTH_LOG_BODIES"), False),
            log_format=log_format,  # type: ignore[arg-type]
            log_level=log_level,
        )
