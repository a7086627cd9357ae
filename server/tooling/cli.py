"""Subcommands for the `stealth` console script added by sandbox part 2.

Wire them in server/cli.py build_parser(): ``from server.tooling.cli import register`` and
``register(sub)`` after the other subcommands. Each sets ``func(args, settings)`` like the others.
"""

from __future__ import annotations

from typing import Any

from server.tooling import listen, trigger
from server.webhooks import worker


def register(subparsers: Any) -> None:
    """Add `stealth listen`, `stealth trigger` and `stealth worker`."""
    listen.register(subparsers)
    trigger.register(subparsers)
    worker.register(subparsers)
