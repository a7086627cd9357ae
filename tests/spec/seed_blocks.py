"""Extract the JSON examples of the seed documents (fenced or not), with their line numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Seed 002 was converted with a wrong code page: U+03B2 (beta) stands for a dash or an arrow, U+0392 U+00A7 for
# the section sign and U+0393 U+2015 for i-diaeresis. Only the last two are repaired; a beta in a JSON string is
# left alone (it is still valid JSON).
GARBLED = {"\u0392\u00a7": "\u00a7", "\u0393\u2015": "\u00ef"}


@dataclass(frozen=True)
class Block:
    seed: str  # "000" .. "004"
    line: int  # 1-based line of the opening brace
    text: str
    value: Any  # the parsed JSON, or None when the block is not valid JSON
    heading: str  # the nearest line above that looks like a heading (for messages)

    @property
    def key(self) -> str:
        return f"{self.seed}:{self.line}"


def _balance(text: str) -> int:
    depth = 0
    in_str = False
    esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return depth


def _heading(lines: list[str], i: int) -> str:
    for j in range(i - 1, max(-1, i - 40), -1):
        s = lines[j].strip()
        if s.startswith("#") or (s[:1].isdigit() and "." in s[:6]) or s.startswith("**"):
            return s[:80]
    return ""


def blocks(path: Path) -> list[Block]:
    """Every top-level JSON object in the seed: a line starting with `{` whose braces balance within 200 lines."""
    text = path.read_text(encoding="utf-8")
    for bad, good in GARBLED.items():
        text = text.replace(bad, good)
    lines = text.splitlines()
    seed = path.name[:3]
    out: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "{" or (lines[i].startswith("{") and not lines[i].startswith("{{")):
            depth = 0
            for j in range(i, min(len(lines), i + 200)):
                depth += _balance(lines[j])
                if depth <= 0:
                    break
            chunk = "\n".join(lines[i : j + 1])
            try:
                value = json.loads(chunk)
            except json.JSONDecodeError:
                value = None
            out.append(Block(seed, i + 1, chunk, value, _heading(lines, i)))
            i = j + 1
            continue
        i += 1
    return out
