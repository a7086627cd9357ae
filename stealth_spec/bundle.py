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
import sys
from pathlib import Path
from typing import Any

import yaml

COMPONENT_TYPES = ("schemas", "responses", "parameters", "headers", "requestBodies", "examples", "links",
                   "securitySchemes", "callbacks", "pathItems")


class BundleError(Exception):
    """A $ref that cannot be resolved, or a component name used by two files."""


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


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
            self.cache[path] = load_yaml(path)
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
                if isinstance(value, dict) and isinstance(value.get("$ref"), str) and not value["$ref"].startswith("#"):
                    target = (self.root_file.parent / value["$ref"]).resolve()
                    comp = self._component_of(target)
                    if comp != (ctype, name):
                        raise BundleError(f"root lists components/{ctype}/{name} but points at {value['$ref']}")
                    self._resolve_ref(value["$ref"], self.root_file)
                else:
                    self.components.setdefault(ctype, {})[name] = self._walk(value, self.root_file)
        out["components"] = {ctype: dict(sorted(self.components[ctype].items()))
                             for ctype in COMPONENT_TYPES if ctype in self.components}
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
        validator = Draft202012Validator({"$ref": f"{uri}#{pointer}"}, registry=registry, format_checker=checker)
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
    out_base.parent.mkdir(parents=True, exist_ok=True)
    out_base.with_suffix(".yaml").write_text(
        yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    out_base.with_suffix(".json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec_dir", type=Path)
    parser.add_argument("--out", type=Path, help="output path without extension (writes .yaml and .json)")
    parser.add_argument("--check", action="store_true",
                        help="validate the bundle with openapi-spec-validator and every example against its schema")
    parser.add_argument("--allow-missing", action="store_true",
                        help="skip paths and webhooks whose files do not exist yet (work in progress)")
    args = parser.parse_args(argv)
    try:
        doc = bundle(args.spec_dir, allow_missing=args.allow_missing)
    except BundleError as exc:
        print(f"bundle error: {exc}", file=sys.stderr)
        return 1
    if args.out:
        dump(doc, args.out)
    if args.check:
        from openapi_spec_validator import validate
        from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

        try:
            validate(doc)
        except OpenAPIValidationError as exc:
            print(f"invalid bundle: {exc}", file=sys.stderr)
            return 1
        problems = list(iter_example_problems(doc))
        for where, msg in problems:
            print(f"example invalid: {where}: {msg}", file=sys.stderr)
        if problems:
            return 1
        print(f"{args.spec_dir}: bundle valid ({len(doc.get('paths', {}))} paths, "
              f"{len(doc.get('webhooks', {}))} webhooks, "
              f"{len(doc.get('components', {}).get('schemas', {}))} schemas)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
