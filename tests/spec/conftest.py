"""Print the seed-example counts at the end of the run."""

from __future__ import annotations

import pytest

from tests.spec import test_seed_examples as seeds


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not seeds.seeds_dir().is_dir():
        return
    c = seeds.counts()
    terminalreporter.write_sep("-", "seed examples")
    terminalreporter.write_line(
        f"seed JSON examples valid: {c['valid']} / {c['total']} "
        f"(justified deviations: {c['deviations']}; JSON blocks that are not examples: {c['not_examples']})"
    )
