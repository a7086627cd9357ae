"""Print how many models, examples and invalid payloads the model tests cover."""

from __future__ import annotations

import importlib
import inspect
from collections import Counter

import pytest
from pydantic import BaseModel

from tests.models.cases import APIS, all_examples, all_invalids, is_enum


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = []
    for api in APIS:
        module = importlib.import_module(f"stealth_models.{api}")
        classes = [
            obj for _, obj in inspect.getmembers(module, inspect.isclass) if obj.__module__ == module.__name__
        ]
        n_models = sum(1 for c in classes if issubclass(c, BaseModel))
        n_enums = sum(1 for c in classes if is_enum(c))
        lines.append(f"stealth_models.{api}: {n_models} models, {n_enums} enums")
    examples = all_examples()
    invalids = Counter(i.kind for i in all_invalids())
    lines.append(
        f"examples round-tripped: {len(examples)} over {len({(e.api, e.schema) for e in examples})} schemas"
    )
    lines.append(f"invalid payloads rejected: {sum(invalids.values())} ({dict(sorted(invalids.items()))})")
    terminalreporter.write_sep("-", "generated models")
    for line in lines:
        terminalreporter.write_line(line)
