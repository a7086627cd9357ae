"""How many models, examples and invalid payloads the model tests cover (printed by tests/conftest.py)."""

from __future__ import annotations

import importlib
import inspect
from collections import Counter

from pydantic import BaseModel

from tests.models.cases import APIS, all_examples, all_invalids, is_enum


def summary_lines() -> list[str]:
    lines = []
    for api in APIS:
        try:
            module = importlib.import_module(f"stealth_models.{api}")
        except ImportError:
            continue
        classes = [
            obj
            for name, obj in inspect.getmembers(module, inspect.isclass)
            if obj.__module__ == module.__name__ and "[" not in name
        ]
        n_models = sum(1 for c in classes if issubclass(c, BaseModel))
        n_enums = sum(1 for c in classes if is_enum(c))
        lines.append(f"stealth_models.{api}: {n_models} models, {n_enums} enums")
    examples = all_examples()
    invalids = Counter(i.kind for i in all_invalids())
    lines.append(f"examples round-tripped: {len(examples)}")
    lines.append(f"invalid payloads rejected: {sum(invalids.values())} ({dict(sorted(invalids.items()))})")
    return lines
