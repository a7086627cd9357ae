"""Shared fixtures: the repository, the bundled specs (built in memory from spec/)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from stealth_spec.bundle import bundle

REPO = Path(__file__).resolve().parent.parent
SPECS = {"partner": REPO / "spec" / "partner-api", "pharmacy": REPO / "spec" / "pharmacy-api"}


@cache
def bundled(api: str) -> dict[str, Any]:
    """The bundled document of ``api`` ("partner" or "pharmacy"), built once per process."""
    return bundle(SPECS[api])


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Counts of the spec and model checks (here, not in tests/*/conftest.py: under xdist only the root conftest
    runs on the controller, which writes the summary)."""
    from tests.models.conftest import summary_lines as model_lines
    from tests.spec.conftest import summary_lines as seed_lines

    for title, make_lines in (("generated models", model_lines), ("seed examples", seed_lines)):
        try:
            lines = make_lines()
        except Exception as exc:  # the tests themselves report what is broken
            lines = [f"summary unavailable: {exc!r:.200}"]
        if lines:
            terminalreporter.write_sep("-", title)
            for line in lines:
                terminalreporter.write_line(line)
