"""Fixtures of the reliability tests: a real `stealth serve` process on a fresh database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.reliability.procs import BACKENDS, Server, Store, fresh_database, new_key, serve, server_env


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def live(backend: str, tmp_path: Path) -> Iterator[Callable[..., tuple[Server, Store]]]:
    """Start `stealth serve` on a fresh database of ``backend``; returns (server, store)."""
    opened: list[Any] = []

    def start(**env: str) -> tuple[Server, Store]:
        db_ctx = fresh_database(backend, tmp_path)
        url = db_ctx.__enter__()
        opened.append(db_ctx)
        key = new_key()
        store = Store(url, key)
        opened.append(store)
        ctx = serve(server_env(url, key, tmp_path / "state", **env), tmp_path / f"server-{len(opened)}.log")
        server = ctx.__enter__()
        opened.append(ctx)
        return server, store

    yield start
    for item in reversed(opened):
        if isinstance(item, Store):
            item.close()
        else:
            item.__exit__(None, None, None)
