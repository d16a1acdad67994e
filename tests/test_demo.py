"""The README's demo in its short mode, in-process on the active backend."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).parents[1]


def _load_demo():
    spec = importlib.util.spec_from_file_location("demo",
                                                  ROOT / "examples/demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_quick_mode_writes_its_outputs(tmp_path, capsys):
    demo = _load_demo()
    # Two runs keep this short: a plain optimizer and a schedule recipe.
    code = demo.main(["--quick", "--epochs", "1", "--out", str(tmp_path),
                      "--only", "nag,sgd+StepLR,adam+ReduceLROnPlateau"])
    assert code == 0
    for name in ("learning_curves.png", "results.md", "tutorial_surface.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    table = (tmp_path / "results.md").read_text()
    for run in ("nag", "sgd+StepLR", "adam+ReduceLROnPlateau"):
        assert f"| {run} |" in table
    # every run learned something on 10 classes (chance is 0.1)
    accuracies = [float(line.split("|")[2]) for line in table.splitlines()[2:]]
    assert min(accuracies) > 0.3
    assert "wrote" in capsys.readouterr().out
