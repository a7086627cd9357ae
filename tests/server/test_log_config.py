"""STEALTH_LOG_BODIES / STEALTH_LOG_FORMAT / STEALTH_LOG_LEVEL, and the body-log middleware only when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.app import _middlewares
from server.config import ConfigError, Settings
from server.middleware.bodylog import BodyLogMiddleware


def test_log_settings_from_env(tmp_path: Path) -> None:
    s = Settings.from_env({}, cwd=tmp_path)
    assert (s.log_bodies, s.log_format, s.log_level) == (False, "text", "info")
    s = Settings.from_env(
        {"STEALTH_LOG_BODIES": "1", "STEALTH_LOG_FORMAT": "JSON", "STEALTH_LOG_LEVEL": "debug"}, cwd=tmp_path
    )
    assert (s.log_bodies, s.log_format, s.log_level) == (True, "json", "debug")
    for env in (
        {"STEALTH_LOG_FORMAT": "xml"},
        {"STEALTH_LOG_LEVEL": "loud"},
        {"STEALTH_LOG_BODIES": "maybe"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env(env, cwd=tmp_path)


def _has_bodylog(stack: list[Any]) -> bool:
    return any(getattr(mw, "func", None) is BodyLogMiddleware for mw in stack)


def test_body_log_middleware_is_registered_only_when_on(sandbox: Any) -> None:
    state = sandbox.state
    assert not _has_bodylog(_middlewares(state))
    saved = state.settings
    try:
        state.settings = saved.with_(log_bodies=True)
        assert _has_bodylog(_middlewares(state))
    finally:
        state.settings = saved
