"""The drift check (`make lint` -> `python -m stealth_spec.generate --check`) catches hand edits of generated/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stealth_spec import generate

REPO = Path(__file__).resolve().parent.parent.parent
BUNDLES_BUILT = all((REPO / p["input"]).is_file() for p in generate.profiles().values())
pytestmark = pytest.mark.skipif(not BUNDLES_BUILT, reason="bundles not built: run `make bundle`")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generation from the current bundles, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("fresh")
    generate.generate_into(root)
    return root


def _copy_generated(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "generated", tmp_path / "generated")
    return tmp_path


def test_committed_models_match_the_spec(fresh: Path) -> None:
    assert generate.compare(REPO, fresh) == []


def test_hand_edit_is_detected(tmp_path: Path, fresh: Path) -> None:
    root = _copy_generated(tmp_path)
    target = root / generate.profiles()["partner"]["output"]
    text = target.read_text(encoding="utf-8")
    target.write_text(text.replace("(BaseModel):", "(BaseModel):  # edited by hand", 1), encoding="utf-8")
    problems = generate.compare(root, fresh)
    assert len(problems) == 1
    assert "partner.py: differs" in problems[0]


def test_deleted_and_extra_files_are_detected(tmp_path: Path, fresh: Path) -> None:
    root = _copy_generated(tmp_path)
    (root / generate.profiles()["pharmacy"]["output"]).unlink()
    (root / "generated" / "stealth_models" / "handwritten.py").write_text("X = 1\n", encoding="utf-8")
    problems = generate.compare(root, fresh)
    assert any("pharmacy.py: missing" in p for p in problems)
    assert any("handwritten.py: not generated" in p for p in problems)


def test_drift_check_regenerates_and_fails_on_a_hand_edit(tmp_path: Path) -> None:
    """The function `make lint` runs, end to end: regenerate into a scratch directory and diff."""
    root = _copy_generated(tmp_path)
    target = root / generate.profiles()["pharmacy"]["output"]
    target.write_text(target.read_text(encoding="utf-8") + "# hand edit\n", encoding="utf-8")
    problems = generate.drift(root)
    assert [p.split(":")[0] for p in problems] == ["generated/stealth_models/pharmacy.py"]


def test_generation_is_deterministic(tmp_path: Path, fresh: Path) -> None:
    generate.generate_into(tmp_path)
    assert generate.compare(tmp_path, fresh) == []
    assert generate.compare(fresh, tmp_path) == []
