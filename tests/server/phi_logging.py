"""Test helpers: capture every log record of every logger, and record the exchanges a test makes."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from conformance.phi_scan import PhiValues
from server.logs import JsonFormatter, TextFormatter


class CaptureHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        """Each record as every formatter would write it: message, standard traceback, our two formats."""
        plain = logging.Formatter("%(name)s %(levelname)s %(message)s")
        out = []
        for record in self.records:
            out.append(plain.format(record))  # includes the standard exception text (with its message)
            out.append(TextFormatter().format(record))
            out.append(JsonFormatter().format(record))
        return out

    def access_lines(self) -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in self.records if r.name == "stealth.access"]

    def payload_lines(self) -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in self.records if r.name == "stealth.webhooks.payload"]


def _server_side(record: logging.LogRecord) -> bool:
    """False for the test client's own request lines (httpx logging the URL the test asked for)."""
    return not (record.name == "httpx" and "http://testserver" in record.getMessage())


@contextlib.contextmanager
def capture_all_logs() -> Iterator[CaptureHandler]:
    """Root at DEBUG with our handler, also on every logger that does not propagate.

    Levels the application pinned itself (``sqlalchemy.engine`` at WARNING: its DEBUG lines are result rows)
    are left as they are: they are part of what is tested.
    """
    handler = CaptureHandler()
    handler.addFilter(_server_side)
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    extra: list[logging.Logger] = []
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and not logger.propagate:
            logger.addHandler(handler)
            extra.append(logger)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        for logger in extra:
            logger.removeHandler(handler)


@dataclass
class Recorder:
    """Wraps Sandbox.call and keeps each exchange (by request id) for the PHI collector."""

    sandbox: Any
    exchanges: list[tuple[str, Any, int, Any]] = field(default_factory=list)

    def call(self, method: str, url: str, creds: Any = None, **kwargs: Any) -> Any:
        response = self.sandbox.call(method, url, creds, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        self.exchanges.append(
            (response.headers.get("x-request-id", ""), kwargs.get("json"), response.status_code, body)
        )
        return response

    def collect(self, phi: PhiValues, capture: CaptureHandler) -> None:
        """Add every exchange's PHI (by the operation the access log names for its request id)."""
        ops = {line["request_id"]: line["operation_id"] for line in capture.access_lines()}
        for request_id, request, status, body in self.exchanges:
            phi.add_exchange(ops.get(request_id) or "", request, status, body)
