"""Tests of keras_optzoo.playground: surfaces, trajectories, plots and the CLI.

Oracles: the tutorial gradient is derived by hand in this file; minima are
checked against random samples and float64 finite differences computed here;
trajectories of plain SGD on a quadratic are checked against their closed form.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_optzoo
from keras_optzoo import playground as pg
from keras_optzoo.playground import __main__ as cli

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_FUNCTIONS = pg.list_functions()


def tutorial_gradient(x, y):
    """d/dx and d/dy of 0.4x²y² + 0.3x²y + 0.3x² + 0.3y² − 0.25xy² + 0.31xy − 0.2x + 2.1y."""
    dfdx = 0.8 * x * y**2 + 0.6 * x * y + 0.6 * x - 0.25 * y**2 + 0.31 * y - 0.2
    dfdy = 0.8 * x**2 * y + 0.3 * x**2 + 0.6 * y - 0.5 * x * y + 0.31 * x + 2.1
    return np.array([dfdx, dfdy])


def central_difference(surface, p, h=1e-6):
    x, y = p
    return np.array([
        (surface.numpy(x + h, y) - surface.numpy(x - h, y)) / (2 * h),
        (surface.numpy(x, y + h) - surface.numpy(x, y - h)) / (2 * h),
    ])


def random_domain_points(surface, n, seed=0):
    rng = np.random.default_rng(seed)
    (x0, x1), (y0, y1) = surface.domain
    return np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], axis=1)


# ---------------------------------------------------------------------------
# Surfaces


@pytest.mark.parametrize(
    "point", [(0.0, 0.0), (1.0, -2.0), (-2.5, 1.7), (3.0, 2.0), (0.48, -4.26)]
)
def test_tutorial_autodiff_gradient_matches_hand_derivation(point):
    loss, grad = pg.value_and_grad("tutorial", point)
    expected = tutorial_gradient(*point)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)
    x, y = point
    value = (0.4 * x**2 * y**2 + 0.3 * x**2 * y + 0.3 * x**2 + 0.3 * y**2
             - 0.25 * x * y**2 + 0.31 * x * y - 0.2 * x + 2.1 * y)
    assert loss == pytest.approx(value, rel=1e-5, abs=1e-5)


def test_tutorial_minimum_location():
    (x, y), = pg.get_function("tutorial").minima
    np.testing.assert_allclose(tutorial_gradient(x, y), 0.0, atol=1e-9)
    assert (x, y) == pytest.approx((0.4824, -4.2560), abs=1e-4)


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_keras_ops_and_numpy_values_agree(name):
    surface = pg.get_function(name)
    for p in random_domain_points(surface, 5, seed=1):
        loss, _ = pg.value_and_grad(surface, p)
        p32 = p.astype(np.float32).astype(np.float64)  # the point Keras saw
        assert loss == pytest.approx(float(surface.numpy(*p32)), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize(
    "name", [n for n in ALL_FUNCTIONS if pg.get_function(n).gradient_expression]
)
def test_hand_gradients_match_autodiff_and_finite_differences(name):
    surface = pg.get_function(name)
    for p in random_domain_points(surface, 5, seed=2):
        p = p.astype(np.float32).astype(np.float64)
        hand = surface.gradient(*p)
        np.testing.assert_allclose(hand, central_difference(surface, p),
                                   rtol=1e-5, atol=1e-5 * (1 + np.abs(hand).max()))
        _, auto = pg.value_and_grad(surface, p)
        np.testing.assert_allclose(auto, hand, rtol=1e-3,
                                   atol=1e-4 * (1 + np.abs(hand).max()))


@pytest.mark.parametrize("name", [n for n in ALL_FUNCTIONS if n != "saddle"])
def test_listed_minima_are_global_minima(name):
    surface = pg.get_function(name)
    assert surface.minima, "every surface but the saddle lists its minima"
    samples = random_domain_points(surface, 20000)
    lowest_sample = surface.numpy(samples[:, 0], samples[:, 1]).min()
    for p in surface.minima:
        (x0, x1), (y0, y1) = surface.domain
        assert x0 <= p[0] <= x1 and y0 <= p[1] <= y1
        assert surface.numpy(*p) <= lowest_sample
        assert surface.numpy(*p) == pytest.approx(surface.minimum_value, abs=1e-9)
        # float64 finite differences: a true stationary point.
        np.testing.assert_allclose(central_difference(surface, p), 0.0, atol=1e-5)
        # Backend autodiff at the float32-rounded point.
        _, grad = pg.value_and_grad(surface, p)
        np.testing.assert_allclose(grad, 0.0, atol=1e-3)


def test_known_minimum_values():
    assert pg.get_function("rosenbrock").minimum_value == pytest.approx(0.0, abs=1e-12)
    assert pg.get_function("goldstein_price").minimum_value == pytest.approx(3.0, abs=1e-9)
    assert pg.get_function("beale").minima == [(3.0, 0.5)]


def test_himmelblau_has_four_distinct_minima():
    minima = np.array(pg.get_function("himmelblau").minima)
    assert len(minima) == 4
    gaps = np.linalg.norm(minima[:, None] - minima[None], axis=-1)
    assert gaps[~np.eye(4, dtype=bool)].min() > 1.0


def test_saddle_is_a_saddle():
    surface = pg.get_function("saddle")
    assert surface.minima == [] and surface.minimum_value is None
    _, grad = pg.value_and_grad(surface, (0.0, 0.0))
    np.testing.assert_allclose(grad, 0.0)
    eps = 1e-2
    assert surface.numpy(eps, 0.0) > 0 > surface.numpy(0.0, eps)


def test_unknown_function_lists_known_names():
    with pytest.raises(ValueError, match="'nope'.*rosenbrock"):
        pg.get_function("nope")


# ---------------------------------------------------------------------------
# Specs


def test_parse_spec():
    assert pg.parse_spec("Adam") == ("adam", {})
    assert pg.parse_spec("adam:learning_rate=0.05,amsgrad=True") == (
        "adam", {"learning_rate": 0.05, "amsgrad": True})
    assert pg.parse_spec("sgd: momentum = 0.5 , name='x,y'") == (
        "sgd", {"momentum": 0.5, "name": "x,y"})


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "Malformed"),
        ("adam:", "nothing after"),
        ("adam:learning_rate", "key=value"),
        ("adam:1x=2", "key=value"),
        ("adam:lr=0.1,lr=0.2", "twice"),
        ("adam:amsgrad=yes", "not a Python literal"),
        ("ad am", "Malformed"),
    ],
)
def test_parse_spec_rejects_malformed(spec, message):
    with pytest.raises(ValueError, match=message):
        pg.parse_spec(spec)


def test_split_specs_keeps_pairs_with_their_optimizer():
    assert pg.split_specs("sgd,adam:learning_rate=0.1,amsgrad=True,nag") == [
        "sgd", "adam:learning_rate=0.1,amsgrad=True", "nag"]
    with pytest.raises(ValueError, match="before any optimizer"):
        pg.split_specs("learning_rate=0.1,adam")


def test_make_optimizer_uses_suggested_rate_unless_overridden():
    opt = pg.make_optimizer("adam", "beale")
    assert isinstance(opt, keras_optzoo.Adam)
    suggested = pg.suggested_learning_rate("adam", "beale")
    assert float(opt.learning_rate) == pytest.approx(suggested)
    explicit = pg.make_optimizer("adam:learning_rate=0.004", "beale")
    assert float(explicit.learning_rate) == pytest.approx(0.004)
    nag = pg.make_optimizer("nag", "tutorial")
    assert nag.get_config()["nesterov"] is True
    with pytest.raises(ValueError, match="nosuch"):
        pg.make_optimizer("nosuch")


def test_every_suggestion_names_a_function_and_a_registered_optimizer():
    assert set(pg.SUGGESTED_LEARNING_RATES) == set(ALL_FUNCTIONS)
    for rates in pg.SUGGESTED_LEARNING_RATES.values():
        assert set(rates) <= set(keras_optzoo.list_optimizers())


# ---------------------------------------------------------------------------
# Trajectories


def test_sgd_trajectory_matches_closed_form():
    # On 0.5 (x² + c y²) plain gradient descent scales x by (1 - lr) and y by
    # (1 - c lr) each step: checks gradient sign, row offsets and losses.
    lr, steps, start = 0.015, 40, (-9.0, 2.0)
    traj = pg.run(keras_optzoo.get("sgd", learning_rate=lr), "ill_conditioned",
                  steps=steps, start=start)
    k = np.arange(steps + 1)
    expected = np.stack([start[0] * (1 - lr) ** k, start[1] * (1 - 100 * lr) ** k], 1)
    assert traj.points.shape == (steps + 1, 2) and traj.losses.shape == (steps + 1,)
    np.testing.assert_allclose(traj.points, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        traj.losses, 0.5 * (expected[:, 0] ** 2 + 100 * expected[:, 1] ** 2),
        rtol=1e-4, atol=1e-6)
    assert not traj.diverged and traj.learning_rate == pytest.approx(lr)


@pytest.mark.parametrize("make", [
    lambda s: keras.optimizers.SGD(learning_rate=s),
    lambda s: keras_optzoo.get("sgd", learning_rate=s),
], ids=["keras_builtin", "zoo"])
def test_schedule_learning_rate_follows_closed_form(make):
    schedule = keras.optimizers.schedules.ExponentialDecay(
        0.2, decay_steps=10, decay_rate=0.5)
    steps, x0 = 30, 4.0
    traj = pg.run(make(schedule), "ill_conditioned", steps=steps, start=(x0, 0.0))
    rates = 0.2 * 0.5 ** (np.arange(steps) / 10)
    expected_x = x0 * np.concatenate([[1.0], np.cumprod(1 - rates)])
    np.testing.assert_allclose(traj.points[:, 0], expected_x, rtol=1e-5)
    assert traj.learning_rate == "ExponentialDecay"


def test_builtin_and_zoo_schedule_optimizers_run_side_by_side():
    schedule = keras_optzoo.schedules.StepLR(0.05, step_size=20, gamma=0.5)
    result = pg.compare({
        "keras-adam": keras.optimizers.Adam(learning_rate=0.05),
        "zoo-sgd-steplr": keras_optzoo.SGD(learning_rate=schedule, momentum=0.9),
        "spec": "nag:learning_rate=0.01",
    }, "tutorial", steps=40)
    assert list(result) == ["keras-adam", "zoo-sgd-steplr", "spec"]
    for trajectory in result.values():
        assert trajectory.points.shape == (41, 2)
        assert trajectory.losses[-1] < trajectory.losses[0]
    assert result["zoo-sgd-steplr"].learning_rate == "StepLR"


def test_keras_builtin_optimizer_runs():
    traj = pg.run(keras.optimizers.Adam(learning_rate=0.1), "tutorial", steps=100)
    assert traj.steps == 100 and not traj.diverged
    assert traj.losses[-1] < traj.losses[0]
    assert traj.name == "Adam"


def test_adam_reaches_minimum_of_convex_quadratic():
    traj = pg.run(keras_optzoo.get("adam", learning_rate=0.1), "ill_conditioned",
                  steps=300)
    d = traj.distances("ill_conditioned")
    assert d[-1] < 1e-2 < d[0]
    assert d[-1] < d[0] / 100
    s = traj.summary("ill_conditioned", tol=1e-2)
    assert s.distance == pytest.approx(d[-1])
    assert s.first_within_tol is not None and np.all(d[: s.first_within_tol] > 1e-2)


def test_adam_reaches_rosenbrock_minimum():
    traj = pg.run(keras_optzoo.get("adam", learning_rate=0.02), "rosenbrock",
                  steps=400, start=(0.0, 0.0))
    d = traj.distances("rosenbrock")
    assert d[-1] < 1e-2
    assert traj.losses[-1] < 1e-4 < traj.losses[0]


def test_divergence_is_detected_and_stops_the_run():
    traj = pg.run(keras_optzoo.get("sgd", learning_rate=1.0), "rosenbrock", steps=200)
    assert traj.diverged
    k = traj.diverged_at
    assert 0 < k < 200 and len(traj.points) == len(traj.losses) == k + 1
    assert np.all(np.isfinite(traj.points[:k])) and np.all(np.isfinite(traj.losses[:k]))
    assert not (np.all(np.isfinite(traj.points[k])) and np.isfinite(traj.losses[k]))
    assert traj.summary("rosenbrock").diverged_at == k
    assert np.all(np.isfinite(traj.final_point))
    assert f"diverged at step {k}" in pg.summary_table("rosenbrock", [traj])


def test_run_rejects_a_used_optimizer_and_bad_start():
    opt = keras_optzoo.get("sgd", learning_rate=0.01)
    pg.run(opt, "tutorial", steps=2)
    with pytest.raises(ValueError, match="fresh optimizer"):
        pg.run(opt, "tutorial", steps=2)
    with pytest.raises(ValueError, match="start"):
        pg.run(keras_optzoo.get("sgd"), "tutorial", start=(1.0, 2.0, 3.0))


def test_compare_accepts_specs_and_dicts():
    results = pg.compare(["sgd", "adam:learning_rate=0.05", "sgd"], "himmelblau", steps=5)
    assert list(results) == ["sgd", "adam:learning_rate=0.05", "sgd (2)"]
    np.testing.assert_array_equal(results["sgd"].points, results["sgd (2)"].points)
    start = results["sgd"].points[0]
    assert all(np.array_equal(t.points[0], start) for t in results.values())
    mixed = pg.compare({"mine": keras.optimizers.SGD(0.01), "nag": "nag"},
                       "himmelblau", steps=3, start=(1.0, 1.0))
    assert list(mixed) == ["mine", "nag"]
    np.testing.assert_allclose(mixed["nag"].points[0], (1.0, 1.0))
    with pytest.raises(ValueError, match="nosuch"):
        pg.compare(["sgd", "nosuch"], "himmelblau", steps=3)


def test_saddle_summary_has_no_distance():
    traj = pg.run("sgd", "saddle", steps=20)
    s = traj.summary("saddle")
    assert s.distance is None and s.first_within_tol is None
    assert "n/a" in pg.summary_table("saddle", [traj])


# ---------------------------------------------------------------------------
# Plots and the command line


def test_plots_and_table(tmp_path):
    results = pg.compare(["sgd", "adam"], "goldstein_price", steps=10)
    ax = pg.plot_contour("goldstein_price", results)
    assert len(ax.get_legend().get_texts()) == 2 + 3  # paths, start, end, minimum
    ax = pg.plot_losses(results, function="goldstein_price")
    assert ax.get_yscale() == "log"
    png = pg.plot_comparison("goldstein_price", results, tmp_path / "gp.png")
    gif = pg.animate("goldstein_price", results, tmp_path / "gp.gif", frames=4)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(gif, "rb").read(6) == b"GIF89a"
    table = pg.summary_table("goldstein_price", results, tol=0.5)
    lines = table.strip().splitlines()
    assert len(lines) == 4 and "first step within 0.5" in lines[0]
    assert lines[2].startswith("| sgd | 5e-06 |")


def _cli(*args, cwd):
    """Run the CLI in a subprocess with this process's KERAS_BACKEND."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run(
        [sys.executable, "-m", "keras_optzoo.playground", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=240)


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = _cli("--function", "beale", "--optimizers",
                "sgd,adam:learning_rate=0.05,amsgrad=True", "--steps", "15",
                "--start=-1,1.5", "--out", str(out), "--gif", "--frames", "3",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for ext in ("png", "md", "gif"):
        assert (out / f"beale.{ext}").is_file()
        assert str(out / f"beale.{ext}") in proc.stdout
    table = (out / "beale.md").read_text()
    assert "| adam:learning_rate=0.05,amsgrad=True | 0.05 |" in table
    assert "from (-1, 1.5)" in table
    assert table.strip().splitlines()[-1] in proc.stdout
    assert (out / "beale.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_unknown_optimizer_exits_2_in_a_subprocess(tmp_path):
    proc = _cli("--optimizers", "sgd,adma", "--steps", "2", "--out",
                str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "adma" in proc.stderr and "usage:" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, bad",
    [
        (["--function", "banana"], "banana"),
        (["--optimizers", "sgd,adamm"], "adamm"),
        (["--optimizers", "adam:learning_rate=oops"], "oops"),
        (["--optimizers", "adam:betas=0.9"], "betas"),
        (["--start", "1"], "--start"),
    ],
)
def test_cli_bad_arguments_exit_2(argv, bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv + ["--out", str(tmp_path), "--steps", "1"])
    assert info.value.code == 2
    assert bad in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_list(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ALL_FUNCTIONS + keras_optzoo.list_optimizers():
        assert name in out

