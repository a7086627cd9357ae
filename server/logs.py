"""Process logging: one handler on the root logger, text or JSON lines, PHI-safe exceptions.

- ``STEALTH_LOG_FORMAT=json`` writes one JSON object per record (``ts``, ``level``, ``logger``, then the
  fields of a JSON message such as an access-log line, or ``message``); ``text`` writes the message alone.
- Exceptions are written as their type and stack frames, never their message: a message may quote a request
  value or SQL parameters (PHI).
- uvicorn's own access log is dropped: it prints the raw URL (PHI in query strings and path ids); the
  ``stealth.access`` log replaces it with the operation's path template and redacted query.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from server.config import Settings

UVICORN_ACCESS = "uvicorn.access"


def safe_exception(exc_info: Any) -> str:
    """``Type`` and the stack frames of an exception (and its causes), without any message."""
    _, exc, _ = exc_info
    parts: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = "".join(traceback.format_tb(exc.__traceback__)) if exc.__traceback__ else ""
        parts.append(f"{type(exc).__module__}.{type(exc).__qualname__} (message not logged)\n{frames}")
        exc = exc.__cause__ or exc.__context__
    return "Traceback (most recent call last):\n" + "\nCaused by: ".join(parts)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(message)s")

    def formatException(self, ei: Any) -> str:
        return safe_exception(ei)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        message = record.getMessage()
        fields = None
        if message.startswith("{"):
            try:
                fields = json.loads(message)
            except ValueError:
                fields = None
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        else:
            out["message"] = message
        if record.exc_info:
            out["exception"] = safe_exception(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


def silence_uvicorn_access() -> None:
    """Drop uvicorn's access records (raw URL with query string) wherever uvicorn configured them."""
    logger = logging.getLogger(UVICORN_ACCESS)
    if not any(isinstance(f, _DropRecords) for f in logger.filters):
        logger.addFilter(_DropRecords())


def configure(settings: Settings, stream: Any = None) -> logging.Handler:
    """Install the root handler for ``settings`` (replacing earlier ones); returns it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # uvicorn's loggers propagate to ours (serve passes log_config=None); its access log is replaced.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    silence_uvicorn_access()
    if settings.log_bodies and root.level > logging.DEBUG:
        logging.getLogger("stealth.webhooks.payload").setLevel(logging.DEBUG)
    return handler
