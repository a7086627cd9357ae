"""Generate the pydantic models in ``generated/stealth_models`` from the bundled specs, or check for drift.

``make generate`` runs ``python -m stealth_spec.generate``: for each profile in ``pyproject.toml``
(``[tool.datamodel-codegen.profiles.partner]`` and ``.pharmacy``) it runs ``datamodel-codegen --profile <name>``
on the bundle (``build/openapi/<api>.json``, made by ``make bundle``). Generation always happens in a scratch
directory with a fixed formatter configuration and is then copied into place, so the bytes do not depend on
where the output goes: ``--check`` (run by ``make lint``) regenerates into a scratch directory and fails when
any committed file differs.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "stealth_models"
INIT = '''"""Pydantic v2 models generated from the OpenAPI bundles by ``make generate``. Do not edit: change the spec.

* ``stealth_models.partner``: the Stealth Health Partner API (``spec/partner-api``).
* ``stealth_models.pharmacy``: the pharmacy-operations API (``spec/pharmacy-api``).
"""
'''
# The formatter configuration generation runs under (ruff finds it in the scratch directory), so the output
# is the same wherever the project lives and whatever ruff configuration surrounds it.
RUFF_TOML = 'line-length = 110\ntarget-version = "py311"\n'


def profiles(repo: Path = REPO) -> dict[str, dict[str, str]]:
    """The generation profiles (name -> {input, output}) of ``pyproject.toml``, all but ``common``."""
    config = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))
    table = config["tool"]["datamodel-codegen"]["profiles"]
    return {name: prof for name, prof in table.items() if "input" in prof and "output" in prof}


def _codegen(repo: Path, name: str, input_path: Path, output: Path) -> None:
    exe = Path(sys.executable).parent / "datamodel-codegen"
    cmd = [
        str(exe) if exe.exists() else "datamodel-codegen",
        "--profile",
        name,
        "--input",
        str(input_path),
        "--output",
        str(output),
    ]
    result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"datamodel-codegen --profile {name} failed:\n{result.stderr}{result.stdout}")


def generate_into(target: Path, repo: Path = REPO) -> list[Path]:
    """Generate every profile into ``target/<output>`` (relative outputs); return the files written."""
    profs = profiles(repo)
    with tempfile.TemporaryDirectory(prefix="stealth-gen-") as tmp:
        scratch = Path(tmp)
        (scratch / "ruff.toml").write_text(RUFF_TOML, encoding="utf-8")
        jobs = []
        for name, prof in profs.items():
            input_path = repo / prof["input"]
            if not input_path.is_file():
                raise FileNotFoundError(f"{input_path} does not exist: run `make bundle` first")
            # Keep the input's file name: it is printed in the generated header.
            out = scratch / name / Path(prof["output"]).name
            out.parent.mkdir(parents=True)
            (out.parent / "ruff.toml").write_text(RUFF_TOML, encoding="utf-8")
            jobs.append((name, input_path, out, target / prof["output"]))
        with ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
            for future in [pool.submit(_codegen, repo, name, inp, out) for name, inp, out, _ in jobs]:
                future.result()
        written = []
        for _, _, out, final in jobs:
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out, final)
            written.append(final)
            init = final.parent / "__init__.py"
            if init not in written:
                init.write_text(INIT, encoding="utf-8")
                (final.parent / "py.typed").write_text("", encoding="utf-8")
                written += [init, final.parent / "py.typed"]
    return written


def compare(committed_root: Path, fresh_root: Path) -> list[str]:
    """Differences between the generated files under ``committed_root`` and those under ``fresh_root``."""
    problems: list[str] = []
    fresh_files = sorted(p for p in fresh_root.rglob("*") if p.is_file() and p.name != "ruff.toml")
    for fresh in fresh_files:
        rel = fresh.relative_to(fresh_root)
        committed = committed_root / rel
        if not committed.is_file():
            problems.append(f"{rel}: missing; run `make generate`")
            continue
        old = committed.read_text(encoding="utf-8")
        new = fresh.read_text(encoding="utf-8")
        if old != new:
            diff = difflib.unified_diff(
                old.splitlines(True), new.splitlines(True), f"committed/{rel}", f"fresh/{rel}", n=1
            )
            problems.append(f"{rel}: differs from what the spec generates:\n" + "".join(list(diff)[:60]))
    for pkg in sorted({f.relative_to(fresh_root).parent for f in fresh_files}):
        for extra in sorted((committed_root / pkg).glob("*.py")):
            if not (fresh_root / pkg / extra.name).exists():
                problems.append(f"{pkg / extra.name}: not generated from the spec; remove it")
    return problems


def drift(committed_root: Path, repo: Path = REPO) -> list[str]:
    """Differences between the models under ``committed_root`` and a fresh generation (empty: no drift)."""
    with tempfile.TemporaryDirectory(prefix="stealth-drift-") as tmp:
        generate_into(Path(tmp), repo)
        return compare(committed_root, Path(tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when generated/ differs from the spec")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.check:
        problems = drift(REPO)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                "generated models are out of date with the spec: run `make generate` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"generated models match the spec ({time.perf_counter() - start:.1f}s)")
        return 0
    written = generate_into(REPO)
    for path in written:
        print(f"wrote {path.relative_to(REPO)}")
    print(f"generated in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
