"""The bundled Partner API contract, and the facts the server reads from it.

Everything the server needs to know about operations (access tier, sandbox-only, validation order),
error codes (status from ``x-error-catalog``) and lifecycles comes from the spec, never a hand copy.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from stealth_spec.bundle import bundle

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class OperationInfo:
    """One operation of the spec, with the extensions the server enforces."""

    operation_id: str
    method: str
    path: str
    access_tiers: tuple[str, ...]
    sandbox_only: bool
    validation_order: tuple[str, ...]
    has_body: bool
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class CatalogEntry:
    code: str
    status: int
    retryable: bool
    description: str
    deprecated: bool = False


class SpecIndex:
    """Read-only view of the bundled document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.operations: dict[str, OperationInfo] = {}
        for path, item in (document.get("paths") or {}).items():
            for method in HTTP_METHODS:
                op = item.get(method) if isinstance(item, dict) else None
                if not isinstance(op, dict) or "operationId" not in op:
                    continue
                tiers = op.get("x-access-tier", "referral")
                tiers_t = tuple(tiers) if isinstance(tiers, list) else (tiers,)
                self.operations[op["operationId"]] = OperationInfo(
                    operation_id=op["operationId"],
                    method=method,
                    path=path,
                    access_tiers=tiers_t,
                    sandbox_only=bool(op.get("x-sandbox-only", False)),
                    validation_order=tuple(op.get("x-validation-order") or ()),
                    has_body="requestBody" in op,
                    raw=op,
                )
        schemas = (document.get("components") or {}).get("schemas") or {}
        error_code = schemas.get("ErrorCode") or {}
        self.catalog: dict[str, CatalogEntry] = {
            code: CatalogEntry(
                code=code,
                status=int(entry["status"]),
                retryable=bool(entry.get("retryable", False)),
                description=str(entry.get("description", "")),
                deprecated=bool(entry.get("deprecated", False)),
            )
            for code, entry in (error_code.get("x-error-catalog") or {}).items()
        }

    @cached_property
    def _path_patterns(self) -> list[tuple[re.Pattern[str], tuple[str, ...]]]:
        out = []
        for path, item in (self.document.get("paths") or {}).items():
            methods = tuple(m.upper() for m in HTTP_METHODS if isinstance(item, dict) and m in item)
            regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"
            out.append((re.compile(regex), methods))
        # literal paths first (/partner/referrals/summary before /partner/referrals/{referral_id})
        out.sort(key=lambda p: p[0].pattern.count("[^/]+"))
        return out

    def allowed_methods(self, request_path: str) -> tuple[str, ...] | None:
        """The methods the spec defines for the path a request hit (for the Allow header of a 405)."""
        for pattern, methods in self._path_patterns:
            if pattern.match(request_path):
                return methods
        return None

    def status_of(self, code: str) -> int:
        return self.catalog[code].status

    def schema(self, name: str) -> dict[str, Any]:
        return self.document["components"]["schemas"][name]

    def has_schema(self, name: str) -> bool:
        return name in ((self.document.get("components") or {}).get("schemas") or {})

    @cached_property
    def resolved(self) -> dict[str, Any]:
        """A copy of the document with every internal ``$ref`` inlined (no cycles in our spec)."""
        return inline_refs(self.document)

    def resolved_schema(self, name: str) -> dict[str, Any]:
        return self.resolved["components"]["schemas"][name]

    def webhook_body_schema(self, event_type: str) -> dict[str, Any] | None:
        item = (self.resolved.get("webhooks") or {}).get(event_type)
        if not item:
            return None
        return item["post"]["requestBody"]["content"]["application/json"]["schema"]


def inline_refs(document: dict[str, Any]) -> dict[str, Any]:
    def resolve(pointer: str) -> Any:
        node: Any = document
        for part in pointer.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def walk(node: Any, depth: int = 0) -> Any:
        if depth > 64:
            raise ValueError("reference cycle in the spec")
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
                target = walk(copy.deepcopy(resolve(node["$ref"])), depth + 1)
                siblings = {k: walk(v, depth) for k, v in node.items() if k != "$ref"}
                return {**target, **siblings} if isinstance(target, dict) else target
            return {k: walk(v, depth) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, depth) for v in node]
        return node

    return walk(document)


def load_spec(spec_dir: Path, allow_missing: bool = False) -> dict[str, Any]:
    """Bundle ``spec_dir`` into one document (``allow_missing`` only while the spec is being written)."""
    return bundle(Path(spec_dir), allow_missing=allow_missing)
