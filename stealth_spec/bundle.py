"""Bundle a multi-file OpenAPI 3.1 document into one self-contained document.

Refs to files under ``components/<type>/<Name>.yaml`` become internal refs
``#/components/<type>/<Name>`` (the component is hoisted into the bundle); every
other file ref (path items, webhooks) is inlined. Output is deterministic.

Usage:
    python -m stealth_spec.bundle spec/partner-api [--out build/openapi/partner-api] [--check]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

COMPONENT_TYPES = (
    "schemas",
    "responses",
    "parameters",
    "headers",
    "requestBodies",
    "examples",
    "links",
    "securitySchemes",
    "callbacks",
    "pathItems",
)


class BundleError(Exception):
    """A $ref that cannot be resolved, or a component name used by two files."""


# libyaml's C loader when available: same results as yaml.safe_load, several times faster.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)


def _pointer_get(doc: Any, pointer: str) -> Any:
    if not pointer or pointer == "/":
        return doc
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


class Bundler:
    def __init__(self, root_file: Path, allow_missing: bool = False) -> None:
        self.allow_missing = allow_missing
        self.missing: list[str] = []
        self.root_file = root_file.resolve()
        self.spec_dir = self.root_file.parent
        self.cache: dict[Path, Any] = {}
        self.components: dict[str, dict[str, Any]] = {}
        self._origin: dict[tuple[str, str], Path] = {}

    def _load(self, path: Path) -> Any:
        if path not in self.cache:
            if not path.is_file():
                raise BundleError(f"$ref target does not exist: {path}")
            try:
                self.cache[path] = load_yaml(path)
            except yaml.YAMLError as exc:
                raise BundleError(f"{path}: not valid YAML: {exc}") from exc
        return self.cache[path]

    def _component_of(self, path: Path) -> tuple[str, str] | None:
        try:
            rel = path.relative_to(self.spec_dir)
        except ValueError:
            return None
        parts = rel.parts
        if len(parts) == 3 and parts[0] == "components" and parts[1] in COMPONENT_TYPES:
            return parts[1], Path(parts[2]).stem
        return None

    def _resolve_ref(self, ref: str, base: Path) -> Any:
        if ref.startswith("#"):
            if base == self.root_file:
                return {"$ref": ref}
            # A local pointer inside another file: inline the target from that file.
            target = _pointer_get(self._load(base), ref[1:])
            return self._walk(copy.deepcopy(target), base)
        file_part, _, fragment = ref.partition("#")
        target_path = (base.parent / file_part).resolve()
        comp = self._component_of(target_path)
        if comp and not fragment:
            ctype, name = comp
            prev = self._origin.get(comp)
            if prev is not None and prev != target_path:
                raise BundleError(f"component {ctype}/{name} defined by two files: {prev} and {target_path}")
            if comp not in self._origin:
                self._origin[comp] = target_path
                self.components.setdefault(ctype, {})[name] = None  # placeholder against cycles
                self.components[ctype][name] = self._walk(copy.deepcopy(self._load(target_path)), target_path)
            return {"$ref": f"#/components/{ctype}/{name}"}
        content = self._load(target_path)
        if fragment:
            content = _pointer_get(content, fragment)
        return self._walk(copy.deepcopy(content), target_path)

    def _walk(self, node: Any, base: Path) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and isinstance(node["$ref"], str):
                resolved = self._resolve_ref(node["$ref"], base)
                siblings = {k: self._walk(v, base) for k, v in node.items() if k != "$ref"}
                if siblings and isinstance(resolved, dict):
                    # OpenAPI 3.1 allows description/summary siblings next to $ref.
                    return {**resolved, **siblings}
                return resolved
            return {k: self._walk(v, base) for k, v in node.items()}
        if isinstance(node, list):
            return [self._walk(v, base) for v in node]
        return node

    def bundle(self) -> dict[str, Any]:
        root = copy.deepcopy(self._load(self.root_file))
        root_components = root.pop("components", {}) or {}
        if self.allow_missing:
            for section in ("paths", "webhooks"):
                for key, item in list((root.get(section) or {}).items()):
                    ref = item.get("$ref") if isinstance(item, dict) else None
                    if ref and not (self.root_file.parent / ref).is_file():
                        self.missing.append(ref)
                        del root[section][key]
        out = {k: self._walk(v, self.root_file) for k, v in root.items()}
        # Components listed in the root index: resolve each under its declared name.
        for ctype, entries in root_components.items():
            for name, value in (entries or {}).items():
                if (
                    isinstance(value, dict)
                    and isinstance(value.get("$ref"), str)
                    and not value["$ref"].startswith("#")
                ):
                    target = (self.root_file.parent / value["$ref"]).resolve()
                    comp = self._component_of(target)
                    if comp != (ctype, name):
                        raise BundleError(
                            f"root lists components/{ctype}/{name} but points at {value['$ref']}"
                        )
                    self._resolve_ref(value["$ref"], self.root_file)
                else:
                    self.components.setdefault(ctype, {})[name] = self._walk(value, self.root_file)
        out["components"] = {
            ctype: dict(sorted(self.components[ctype].items()))
            for ctype in COMPONENT_TYPES
            if ctype in self.components
        }
        return out


def bundle(spec_dir: Path, allow_missing: bool = False) -> dict[str, Any]:
    """Bundle ``spec_dir/openapi.yaml`` into one document."""
    bundler = Bundler(spec_dir / "openapi.yaml", allow_missing=allow_missing)
    doc = bundler.bundle()
    for ref in bundler.missing:
        print(f"warning: skipped missing {ref}", file=sys.stderr)
    return doc


def iter_example_problems(doc: dict[str, Any]):
    """Yield (location, message) for every example that does not validate against its schema.

    Checks media-type ``example``/``examples`` against the media type's schema, and every schema's
    own ``examples`` against that schema (JSON Schema 2020-12, formats asserted).
    """
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    uri = "urn:stealth:bundle"
    registry = Registry().with_resource(uri, Resource(doc, specification=DRAFT202012))
    checker = FormatChecker()

    def check(pointer: str, value: Any, where: str):
        validator = Draft202012Validator(
            {"$ref": f"{uri}#{pointer}"}, registry=registry, format_checker=checker
        )
        for err in validator.iter_errors(value):
            path = "/".join(str(p) for p in err.absolute_path)
            yield where, f"{err.message} (at /{path})"

    def esc(key: Any) -> str:
        return str(key).replace("~", "~0").replace("/", "~1")

    def walk(node: Any, pointer: str):
        if isinstance(node, dict):
            schema = node.get("schema")
            if isinstance(schema, dict) and ("examples" in node or "example" in node) and "in" not in node:
                if "example" in node:
                    yield from check(pointer + "/schema", node["example"], pointer + "/example")
                for name, ex in (node.get("examples") or {}).items():
                    if isinstance(ex, dict) and "value" in ex:
                        yield from check(pointer + "/schema", ex["value"], f"{pointer}/examples/{name}")
            is_schema = "/schema" in pointer or pointer.startswith("/components/schemas/")
            if is_schema and isinstance(node.get("examples"), list) and not pointer.endswith("/properties"):
                for i, ex in enumerate(node["examples"]):
                    yield from check(pointer, ex, f"{pointer}/examples/{i}")
            for k, v in node.items():
                yield from walk(v, f"{pointer}/{esc(k)}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{pointer}/{i}")

    yield from walk(doc, "")


def dump(doc: dict[str, Any], out_base: Path) -> None:
    """Write ``<out_base>.yaml`` and ``<out_base>.json`` (``out_base`` may contain dots)."""
    out_base.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out_base}.yaml").write_text(
        yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8"
    )
    Path(f"{out_base}.json").write_text(
        json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def check_document(doc: dict[str, Any]) -> list[str]:
    """Problems of a bundled document: openapi-spec-validator errors, then invalid examples."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    try:
        validate(doc)
    except OpenAPIValidationError as exc:
        return [f"invalid document: {exc}"]
    return [f"example invalid: {where}: {msg}" for where, msg in iter_example_problems(doc)]


def _summary(doc: dict[str, Any]) -> str:
    return (
        f"{len(doc.get('paths', {}))} paths, {len(doc.get('webhooks', {}))} webhooks, "
        f"{len(doc.get('components', {}).get('schemas', {}))} schemas"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("spec_dir", type=Path)
    parser.add_argument("--out", type=Path, help="output path without extension (writes .yaml and .json)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the bundle with openapi-spec-validator and every example against its schema",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="skip paths and webhooks whose files do not exist yet (work in progress)",
    )
    parser.add_argument(
        "--tiers",
        action="store_true",
        help="also write the per-tier subsets <out>.<tier>.{yaml,json} (partner API)",
    )
    args = parser.parse_args(argv)
    try:
        doc = bundle(args.spec_dir, allow_missing=args.allow_missing)
    except BundleError as exc:
        print(f"bundle error: {exc}", file=sys.stderr)
        return 1
    docs: dict[str, dict[str, Any]] = {"": doc}
    if args.tiers:
        from stealth_spec.tiers import TIERS, TierError, tier_subset

        for tier in TIERS:
            try:
                docs[tier] = tier_subset(doc, tier)
            except TierError as exc:
                print(f"tier subset error: {exc}", file=sys.stderr)
                return 1
    failed = False
    results: dict[str, list[str]] = {}
    if args.check:
        # openapi-spec-validator takes ~2 s per document: check the documents in parallel.
        from concurrent.futures import ProcessPoolExecutor

        workers = max(1, min(len(docs), os.cpu_count() or 1))
        if workers == 1:
            results = {tier: check_document(sub) for tier, sub in docs.items()}
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = dict(zip(docs, pool.map(check_document, docs.values()), strict=True))
    for tier, sub in docs.items():
        label = f"{args.spec_dir}" + (f" [{tier} tier]" if tier else "")
        if args.check:
            problems = results[tier]
            for problem in problems:
                print(f"{label}: {problem}", file=sys.stderr)
            if problems:
                failed = True
                continue
            print(f"{label}: bundle valid ({_summary(sub)})")
        if args.out:
            dump(sub, Path(f"{args.out}.{tier}") if tier else args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
