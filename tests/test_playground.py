"""The 2-D playground: surfaces, autodiff, trajectories, plots and the CLI."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras

import keras_optzoo as oz
from keras_optzoo import playground as pg


def _tutorial_gradient(x, y):
    """Written out by hand from
    f = 0.4x²y² + 0.3x²y + 0.3x² + 0.3y² − 0.25xy² + 0.31xy − 0.2x + 2.1y."""
    dx = 0.8 * x * y**2 + 0.6 * x * y + 0.6 * x - 0.25 * y**2 + 0.31 * y - 0.2
    dy = 0.8 * x**2 * y + 0.3 * x**2 + 0.6 * y - 0.5 * x * y + 0.31 * x + 2.1
    return np.array([dx, dy])


@pytest.mark.parametrize("point", [(0.0, 0.0), (1.5, -2.0), (-2.0, 2.0),
                                   (0.7, 3.1)])
def test_tutorial_autodiff_gradient_equals_analytic(point):
    _, grad = pg.value_and_grad("tutorial", point)
    np.testing.assert_allclose(grad, _tutorial_gradient(*point), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("name", pg.list_functions())
def test_minima_are_real(name):
    surface = pg.get_function(name)
    rng = np.random.default_rng(0)
    (x0, x1), (y0, y1) = surface.domain
    xs = rng.uniform(x0, x1, 4000)
    ys = rng.uniform(y0, y1, 4000)
    values = surface.numpy(xs, ys)
    if not surface.minima:  # the saddle: unbounded below
        assert name == "saddle"
        return
    for x, y in surface.minima:
        assert surface.numpy(x, y) <= values.min() + 1e-9
        _, grad = pg.value_and_grad(surface, (x, y))
        assert np.max(np.abs(grad)) < 1e-2, (name, grad)


def test_known_minimum_values():
    assert pg.get_function("rosenbrock").minimum_value == pytest.approx(0.0,
                                                                        abs=1e-12)
    assert pg.get_function("goldstein_price").minimum_value == pytest.approx(
        3.0, abs=1e-9)
    assert len(pg.get_function("himmelblau").minima) == 4


def test_correct_optimizer_approaches_minimum():
    quad = pg.run(oz.Adam(learning_rate=0.1), "ill_conditioned", steps=300)
    d = quad.distances("ill_conditioned")
    assert d[-1] < 0.05 and d[-1] < d[0] / 20
    rosen = pg.run(oz.SGD(learning_rate=1e-3, momentum=0.9), "rosenbrock",
                   steps=2000)
    d = rosen.distances("rosenbrock")
    assert d[-1] < 0.1 < d[0]


def test_builtin_and_schedule_optimizers_run():
    sched = oz.schedules.StepLR(0.05, step_size=20, gamma=0.5)
    result = pg.compare({
        "keras-adam": keras.optimizers.Adam(learning_rate=0.05),
        "zoo-sgd-steplr": oz.SGD(learning_rate=sched, momentum=0.9),
        "spec": "nag:learning_rate=0.01",
    }, "tutorial", steps=40)
    assert list(result) == ["keras-adam", "zoo-sgd-steplr", "spec"]
    for trajectory in result.values():
        assert trajectory.points.shape == (41, 2)
        assert trajectory.losses[-1] < trajectory.losses[0]


def test_divergence_is_detected():
    result = pg.run(oz.SGD(learning_rate=10.0), "rosenbrock", steps=100)
    assert result.diverged
    assert result.diverged_at < 100


def test_bad_names():
    with pytest.raises(ValueError, match="rosenbrok"):
        pg.get_function("rosenbrok")
    with pytest.raises(ValueError, match="adma"):
        pg.make_optimizer("adma")


def test_plots_and_table(tmp_path):
    result = pg.compare(["sgd", "adam"], "beale", steps=20)
    path = pg.plot_comparison("beale", result, tmp_path / "beale.png")
    assert os.path.getsize(path) > 10_000
    table = pg.summary_table("beale", result)
    assert table.count("\n") >= 3 and "adam" in table


def _cli(*args, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "keras_optzoo.playground", *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = _cli("--function", "rosenbrock", "--optimizers",
                "sgd,momentum,adam:learning_rate=0.05", "--steps", "15",
                "--out", str(out), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "rosenbrock.png").stat().st_size > 10_000
    assert (out / "rosenbrock.md").read_text().count("|") > 10


@pytest.mark.parametrize("args,bad", [
    (["--function", "rosenbrok"], "rosenbrok"),
    (["--optimizers", "sgd,adma"], "adma"),
])
def test_cli_rejects_unknown_names(tmp_path, args, bad):
    proc = _cli(*args, "--steps", "2", "--out", str(tmp_path),
                tmp_path=tmp_path)
    assert proc.returncode == 2
    assert bad in proc.stderr
