"""Every example in its --quick mode, in-process on the active backend."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, files", [
    ("quickstart", []),
    ("initialisation", ["initialisation.png"]),
    ("lr_finder", ["lr_finder.png"]),
    ("playground_tour", ["playground_rosenbrock.png"]),
    ("finetuning", ["finetuning_lrs.png"]),
])
def test_example_quick_mode(name, files, tmp_path, capsys):
    assert _load(name).main(["--quick", "--out", str(tmp_path)]) == 0
    for f in files:
        assert (tmp_path / f).stat().st_size > 0, f
    out = capsys.readouterr().out
    if name == "quickstart":
        lines = [l for l in out.splitlines() if l.startswith("test accuracy")]
        assert len(lines) == 2
        assert lines[0].split()[-1] == lines[1].split()[-1]
        assert "keras_optzoo" in out
    if name == "lr_finder":
        assert "suggested learning rate" in out


def test_porting_from_pytorch_claims(tmp_path, capsys):
    module = _load("porting_from_pytorch")
    assert module.main(["--quick", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "porting.png").stat().st_size > 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(l for l in lines if l.startswith("recipe"))
    # Column positions from the header (cells are left-justified).
    starts = [header.index(k) for k in module.KINDS]
    rows = {}
    for line in lines:
        for recipe in ("SGD + StepLR", "Adam, raw pixels"):
            if line.startswith(recipe):
                cells = [line[s:].split()[0] for s in starts]
                rows[recipe] = cells
    assert set(rows) == {"SGD + StepLR", "Adam, raw pixels"}
    for recipe, cells in rows.items():
        ours, builtin = float(cells[0]), float(cells[1])
        assert ours < 1e-4, (recipe, ours)
        assert builtin > 10 * ours, (recipe, ours, builtin)
