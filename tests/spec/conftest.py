"""The seed-example counts (printed by tests/conftest.py)."""

from __future__ import annotations

from tests.spec import test_seed_examples as seeds


def summary_lines() -> list[str]:
    if not seeds.seeds_dir().is_dir():
        return [f"seed documents not found at {seeds.seeds_dir()}: seed examples skipped"]
    c = seeds.counts()
    return [
        f"seed JSON examples valid: {c['valid']} / {c['total']} "
        f"(justified deviations: {c['deviations']}; JSON blocks that are not examples: {c['not_examples']})"
    ]
