"""Defects and surprises new users reported (issue 18), one test (or a few)
each. Each defect's test failed on the code before its fix (the TF-only
defects, (a) and the LRFinder run on digits, on TF; checked against the
tree before the fix on every backend); a few companions check that what
worked still does (the same layout still loads). The README's code
blocks run in tests/test_readme.py, the L-BFGS example's verdict in
tests/test_lbfgs.py, and the argument checks (LazyAdam's learning rate,
MADGRAD's epsilon) are error cases of their specs (tests/spec_db/), run by
tests/test_optimizers.py.
"""

import pathlib
import warnings
import zipfile

import keras
import numpy as np
import pytest

import harness
import keras_optzoo as oz
from keras_optzoo.callbacks import LRFinder
from keras_optzoo.callbacks import averaging

BACKEND = keras.backend.backend()
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(5, activation="tanh", name="body"),
        keras.layers.LayerNormalization(name="norm"),
        keras.layers.Dense(3, name="head"),
    ])


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 6)).astype("float32"),
            rng.normal(size=(n, 3)).astype("float32"))


@keras.saving.register_keras_serializable(package="test_user_reports")
def is_vector(variable):
    """A registered selector (saved by name): the variables of rank 1."""
    return len(variable.shape) == 1


# ----------------------------------------- (a) param groups built by fit
def _groups(kind, model):
    if kind == "regex":
        return [{"params": r"head/", "learning_rate": 0.05, "beta_1": 0.8}]
    if kind == "callable":
        return [{"params": is_vector, "weight_decay": 0.0}]
    if kind == "list":
        return [{"params": [model.get_layer("head").kernel],
                 "learning_rate": 0.05}]
    return oz.param_groups.layer_decay(model, 0.5)


def _grouped_optimizer(kind, model):
    if kind == "lookahead":
        return oz.Lookahead(oz.AdamW(0.01, param_groups=_groups("regex",
                                                                 model)),
                            sync_period=2)
    return oz.AdamW(0.01, param_groups=_groups(kind, model))


#: jit_compile of the fits: TF, where the defect was, both; JAX's fit is
#: always compiled (jit_compile=False would run it op by op); torch: False,
#: Keras's jit_compile there is torch.compile, which this package does not
#: target (harness.fit_jit_compile).
JIT = {"tensorflow": [False, True], "jax": [True], "torch": [False]}[BACKEND]


@pytest.mark.parametrize("jit", JIT, ids=lambda j: f"jit{int(j)}")
@pytest.mark.parametrize("kind", ["regex", "callable", "list",
                                  "layer_decay", "lookahead"])
def test_param_groups_with_float_rate_fit_without_building_first(kind, jit):
    """TF crashed with "numpy() is only available when eager execution is
    enabled": build (inside the traced train step) read the float learning
    rate as a number. Training unbuilt must equal training built first."""
    x, y = _data()
    weights = []
    for prebuild in (False, True):
        model = _model()
        opt = _grouped_optimizer(kind, model)
        if prebuild:
            opt.build(model.trainable_variables)
        model.compile(optimizer=opt, loss="mse", jit_compile=jit)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# --------------------------------------- (c) validation on the average
def test_swa_validation_is_that_of_the_average_including_the_epoch():
    """`WeightAveraging("swa", start=0)` logged, for epoch e, the loss of
    the average before epoch e was added (Keras validates before
    `on_epoch_end`)."""
    x, y = _data(64)
    xv, yv = _data(32, seed=1)
    model = _model()
    model.compile(optimizer=oz.SGD(0.1, momentum=0.9), loss="mse",
                  jit_compile=harness.fit_jit_compile())
    swa = oz.callbacks.WeightAveraging("swa", start=0)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0,
                        shuffle=False, validation_data=(xv, yv),
                        callbacks=[swa])
    assert swa.n_averaged == 3
    swa.swap_weights()  # the average of the weights after epochs 0, 1, 2
    loss = model.evaluate(xv, yv, verbose=0)
    np.testing.assert_allclose(history.history["val_loss"][-1], loss,
                               rtol=1e-5)


# ----------------------------------------- (d) LRFinder and divergence
def _history(lrs, losses, beta=0.98):
    """A finder whose history is ``losses`` at ``lrs``, smoothed with the
    documented bias-corrected EMA."""
    finder = LRFinder(min_lr=float(lrs[0]), max_lr=float(lrs[-1]),
                      num_steps=len(lrs))
    avg = 0.0
    for i, (lr, loss) in enumerate(zip(lrs, losses)):
        avg = beta * avg + (1 - beta) * loss
        finder.history["lr"].append(float(lr))
        finder.history["loss"].append(float(loss))
        finder.history["smoothed_loss"].append(avg / (1 - beta ** (i + 1)))
    return finder


def _blown_up(finder):
    """The first learning rate at which the batch loss exceeded twice the
    first batch's: clearly past divergence for a classifier."""
    first = finder.history["loss"][0]
    return next(lr for lr, loss in zip(finder.history["lr"],
                                       finder.history["loss"])
                if loss > 2 * first)


def test_lr_finder_suggestion_comes_from_before_divergence():
    """What was measured on TF (SGD momentum 0.9, digits): the loss falls
    from 2.3 to ~0.5, blows up (1.7 -> 40) at lr ~1 and, the network
    dead, stays near 4 to the end; the smoothed loss never reaches 4x its
    best, and its fall after the spike was the steepest descent: the old
    suggestion was ~5, in the divergent region."""
    lrs = np.geomspace(1e-5, 10.0, 200)
    logs = np.log10(lrs)
    losses = np.where(lrs < 1e-3, 2.3,
                      2.3 - 1.8 * np.clip((logs + 3) / 2.5, 0, 1))
    spike = np.flatnonzero(lrs >= 1.0)[0]
    losses[spike:] = 4.0 + 0.3 * np.sin(np.arange(200 - spike))
    losses[spike:spike + 8] = [11.6, 11.4, 1.6, 18.4, 16.0, 82.4, 26.9, 4.9]
    finder = _history(lrs, losses)
    assert not max(finder.history["smoothed_loss"]) > 4 * min(
        finder.history["smoothed_loss"])  # the stop rule did not fire
    assert finder.divergence_index() == spike
    assert finder.suggestion() < _blown_up(finder)


def test_lr_finder_on_digits_suggests_before_divergence():
    """The reported run itself (examples/lr_finder.py's setup): the
    suggestion is below the learning rate at which the batch loss blew
    up, and at or below the smoothed loss's minimum."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.data))
    x = (data.data[order] / 16.0).astype("float32")
    y = data.target[order].astype("int32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=oz.SGD(learning_rate=0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True),
                  jit_compile=harness.fit_jit_compile())
    finder = LRFinder.run(model, x, y, batch_size=32, min_lr=1e-5,
                          max_lr=10.0, num_steps=200)
    blown = [lr for lr, loss in zip(finder.history["lr"],
                                    finder.history["loss"])
             if loss > 2 * finder.history["loss"][0]]
    suggestion = finder.suggestion()
    print(f"LRFinder on digits: suggestion {suggestion:.3g}, loss blown up "
          f"from lr {blown[0] if blown else None}")
    if blown:
        assert suggestion < blown[0]
    assert suggestion <= finder.history["lr"][int(np.argmin(
        finder.history["smoothed_loss"]))]


# ------------------------------------------------- (e) all or nothing
def _trained(make_optimizer, seed):
    """A compiled model whose optimizer holds state (built, 3 steps on its
    counter, moments filled): what a checkpoint of a run holds, without
    the cost of compiling a train step."""
    model = _model(seed)
    model.compile(optimizer=make_optimizer(), loss="mse")
    opt = model.optimizer
    opt.build(model.trainable_variables)
    rng = np.random.default_rng(seed)
    for v in opt.variables:
        if "iteration" in v.path:
            v.assign(np.full(v.shape, 3, v.dtype))
        elif len(v.shape) and "plateau" not in v.path:
            v.assign(rng.normal(size=v.shape).astype(v.dtype))
    return model


LOADERS = {
    "lion": lambda: oz.Lion(1e-3),
    "adamw-amsgrad": lambda: oz.AdamW(1e-3, amsgrad=True),
    "muon": lambda: oz.Muon(),
    "lookahead": lambda: oz.Lookahead(oz.AdamW(1e-3)),
}


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
@pytest.mark.parametrize("name", list(LOADERS))
def test_loading_another_layout_changes_nothing(name, suffix, tmp_path):
    """An AdamW file loaded into a model compiled with another layout
    raised the clear error only after the layers held the file's weights;
    for Lookahead it said "Saved: 0 variables" (of a file holding 12)."""
    source = _trained(lambda: oz.AdamW(1e-3), seed=1)
    path = str(tmp_path / f"adamw{suffix}")
    if suffix == ".keras":
        source.save(path)
    else:
        source.save_weights(path)
    saved = len(source.optimizer.variables)
    model = _trained(LOADERS[name], seed=2)
    before = [w.copy() for w in model.get_weights()]
    state = [np.array(keras.ops.convert_to_numpy(v))
             for v in model.optimizer.variables]
    with pytest.raises(ValueError, match=rf"does not match the layout.*"
                       rf"Saved: {saved} variables"):
        model.load_weights(path)
    assert any(not np.array_equal(a, b)
               for a, b in zip(before, source.get_weights()))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, v in zip(state, model.optimizer.variables):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(v))


def test_loading_the_same_layout_still_loads(tmp_path):
    source = _trained(lambda: oz.Lookahead(oz.AdamW(1e-3)), seed=1)
    path = str(tmp_path / "m.weights.h5")
    source.save_weights(path)
    model = _trained(lambda: oz.Lookahead(oz.AdamW(1e-3)), seed=2)
    model.load_weights(path)
    for a, b in zip(source.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(source.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


def test_loading_hook_is_installed_and_guarded(monkeypatch):
    """The check runs through a wrapper of Keras's private loader
    (keras_optzoo/_loading.py); if Keras moves or changes it, install()
    leaves Keras alone and reports False."""
    from keras.src.saving import saving_lib

    from keras_optzoo import _loading

    assert getattr(saving_lib.load_weights_only, _loading._WRAPPED, False)
    assert getattr(saving_lib.load_model, _loading._WRAPPED, False)
    assert _loading.install()  # idempotent
    assert _loading._AVERAGE_GROUP == averaging.STATE_ATTR

    def changed(weights, path):  # another signature
        return "keras's own"

    monkeypatch.setattr(saving_lib, "load_weights_only", changed)
    assert _loading.install() is False
    assert saving_lib.load_weights_only is changed
    monkeypatch.delattr(saving_lib, "load_weights_only")
    assert _loading.install() is False


# ------------------------------ (f) selectors that cannot be serialised
def test_unserialisable_selector_is_refused_when_created(tmp_path):
    """A lambda selector trained, then `model.save` failed and Keras left
    the target file at 0 bytes (an earlier checkpoint there destroyed)."""
    with pytest.raises(ValueError, match=r"param_groups\[0\].*cannot "
                       r"serialize.*register_keras_serializable"):
        oz.AdamW(param_groups=[{"params": lambda v: True}])

    def local(variable):
        return True

    with pytest.raises(ValueError, match=r"'local'.*cannot serialize"):
        oz.SGD(param_groups=[{"params": local}])
    # a registered function is accepted, and the model saves and reloads
    model = _model()
    model.compile(optimizer=oz.AdamW(1e-3, param_groups=[
        {"params": is_vector, "weight_decay": 0.0}]), loss="mse")
    model.fit(*_data(), epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.models.load_model(path)
    assert again.optimizer._param_groups[0]["params"] is is_vector


# -------------------------------------- (g) helpers on unbuilt models
@pytest.mark.parametrize("helper", [
    oz.param_groups.no_weight_decay,
    lambda model: oz.param_groups.layer_decay(model, 0.7)],
    ids=["no_weight_decay", "layer_decay"])
def test_group_helpers_need_a_built_model(helper):
    """They returned [] on an unbuilt model: biases and norms then got
    weight decay."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(4),
                              keras.layers.LayerNormalization(),
                              keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"needs a built model.*not built "
                       r"yet.*model\.build\(input_shape\)"):
        helper(model)
    model.build((None, 3))
    groups = helper(model)
    assert groups
    chosen = {v.path for g in groups if g.get("weight_decay") == 0.0
              for v in g["params"]}
    assert chosen == {v.path for v in model.trainable_variables
                      if len(v.shape) == 1}


def test_no_weight_decay_exclude_leaves_a_head_to_its_own_groups():
    """The README's groups on a model whose head has a bias (it was
    matched by no_weight_decay and by r"head/": "matched by two param
    groups")."""
    model = _model()
    groups = [*oz.param_groups.no_weight_decay(model, exclude=r"head/"),
              {"params": r"head/kernel", "learning_rate": 1e-3},
              {"params": r"head/bias", "learning_rate": 1e-3,
               "weight_decay": 0.0}]
    opt = oz.AdamW(1e-4, weight_decay=0.05, param_groups=groups)
    opt.build(model.trainable_variables)
    group_of = {"/".join(v.path.split("/")[-2:]): g
                for v, g in zip(model.trainable_variables, opt._group_of)}
    assert group_of == {"body/kernel": 0, "body/bias": 1, "norm/gamma": 1,
                        "norm/beta": 1, "head/kernel": 2, "head/bias": 3}
    with pytest.raises(ValueError, match="matched by two param groups"):
        oz.AdamW(param_groups=[
            *oz.param_groups.no_weight_decay(model),
            {"params": r"head/", "learning_rate": 1e-3}]).build(
                model.trainable_variables)


# ------------------------------------------- (k) update_bn on (x, y)
def test_update_bn_accepts_an_x_y_tuple():
    """`update_bn(model, (x, y))`, one batch as users pass it, failed with
    "Invalid input shape" (y was fed to the model as a second batch)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization(),
                              keras.layers.Dense(3)])
    x, y = _data(40)
    assert oz.callbacks.update_bn(model, x, batch_size=16) == 3
    expected = [np.array(keras.ops.convert_to_numpy(v))
                for v in model.non_trainable_variables]
    for data in ((x, y), (x, y, np.ones(40, "float32"))):
        assert oz.callbacks.update_bn(model, data, batch_size=16) == 3
        for a, v in zip(expected, model.non_trainable_variables):
            np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(v))


# -------------------------------------------------- 4. surprises
def test_muon_warns_when_nothing_gets_muon():
    """Muon on a model without a 2-D variable (or with `exclude_layers`
    matching nothing) trained silently with AdamW (or with Muon)."""
    vector = keras.Variable(np.zeros((4,), "float32"), name="bias")
    conv = keras.Variable(np.zeros((3, 3, 2, 4), "float32"), name="kernel")
    with pytest.warns(UserWarning, match=r"none of the 2 variables gets "
                      r"Muon's orthogonalised update"):
        oz.Muon().build([vector, conv])
    matrix = keras.Variable(np.zeros((4, 3), "float32"), name="kernel")
    with pytest.warns(UserWarning, match=r"`exclude_layers` pattern "
                      r"'haed' matches no variable"):
        oz.Muon(exclude_layers=["haed"]).build([matrix, vector])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        oz.Muon(exclude_layers=["bias"]).build([matrix, vector])


def test_list_selector_of_another_model_says_lists_match_by_identity():
    one, other = _model(), _model()
    opt = oz.AdamW(param_groups=[{"params": [other.get_layer("head").kernel],
                                  "learning_rate": 0.1}])
    with pytest.raises(ValueError, match=r"matches no variable\. A list of "
                       r"variables matches by identity .*not by path.*"
                       r"head/kernel"):
        opt.build(one.trainable_variables)


def test_weight_averaging_warns_when_a_saved_average_is_not_resumed(
        tmp_path):
    x, y = _data()
    model = _model()
    model.compile(optimizer=oz.SGD(0.1), loss="mse")
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[oz.callbacks.WeightAveraging("swa")])
    path = str(tmp_path / "swa.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        assert "model.weights.h5" in archive.namelist()
    loaded = keras.models.load_model(path)
    with pytest.warns(UserWarning, match=r"starts a new average.*"
                      r"resume_from="):
        loaded.fit(x, y, epochs=1, verbose=0,
                   callbacks=[oz.callbacks.WeightAveraging("swa")])
    # resuming it: no warning, and the count goes on
    loaded = keras.models.load_model(path)
    swa = oz.callbacks.WeightAveraging("swa", resume_from=path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        loaded.fit(x, y, epochs=1, verbose=0, callbacks=[swa])
    assert swa.n_averaged == 2


def test_default_names_are_the_registry_names():
    """Keras derived "adam_w", "r_adam" from the class names."""
    names = [oz.AdamW().name, oz.RAdam().name, oz.NAdam().name,
             oz.Lookahead(oz.SGD()).name, oz.LBFGS().name]
    bare = [n.rsplit("_", 1)[0] if n.rsplit("_", 1)[-1].isdigit() else n
            for n in names]
    assert bare == ["adamw", "radam", "nadam", "lookahead", "lbfgs"]
    first, second = oz.AdamW(), oz.AdamW()
    assert first.name != second.name
    assert oz.AdamW(name="mine").name == "mine"


def test_strings_in_compile_are_keras_and_oz_get_is_ours():
    """What the quickstart says about strings (README, "Strings in
    `compile`")."""
    assert type(keras.optimizers.get("adamw")).__module__.startswith("keras")
    with pytest.raises(ValueError, match="Could not interpret optimizer"):
        keras.optimizers.get("radam")
    model = _model()
    model.compile(optimizer=oz.get("radam"), loss="mse")
    assert isinstance(model.optimizer, oz.RAdam)
    model.compile(optimizer=keras.optimizers.serialize(oz.RAdam(1e-3)),
                  loss="mse")
    assert isinstance(model.optimizer, oz.RAdam)
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert 'compile(optimizer=oz.get("radam"' in quickstart
    assert "Strings in `compile`" in quickstart


def test_readme_examples_section_is_true():
    """The README said the demo trains "every optimizer" (it trains the
    first wave) and left examples/finetuning.py out."""
    import importlib.util

    root = ROOT
    readme = (root / "README.md").read_text()
    section = readme.split("\n## Examples", 1)[1].split("\n## ", 1)[0]
    for script in sorted((root / "examples").glob("*.py")):
        assert f"examples/{script.name}" in section, script.name
    spec = importlib.util.spec_from_file_location(
        "demo_for_readme", root / "examples" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    demo_text = section.split("**demo**", 1)[1].split("\n\n", 1)[0]
    for name in demo.recipes(2, 2):
        assert f"`{name}`" in demo_text, name
    assert "every optimizer" not in demo_text
    top = readme.split("## Why", 1)[0]
    assert "every seed optimizer" not in top and \
        "every optimizer" not in top
