"""Lookahead (a wrapper, so not in the spec database) against timm 1.0.31's
Lookahead around torch.optim's optimizer, plus fit/save/resume, config,
schedules, ReduceLROnPlateau, clipping, EMA and gradient accumulation."""

import json

import numpy as np
import pytest
import torch

import keras
from keras import ops

import harness
import keras_optzoo as oz

try:
    from reference.external import timm_optim
except ImportError:
    from tests.reference.external import timm_optim

TimmLookahead = timm_optim("lookahead").Lookahead


class _Config:
    grad_scale = 1.0
    param_scale = 1.0


class Stepper(harness.Stepper):
    """The harness's stepper; the learning rate is the inner optimizer's."""

    def _set_lr(self, lr):
        if self.mode == "compiled" and harness.backend() == "jax":
            index = [id(v) for v in self.opt.variables].index(
                id(self.opt.inner_optimizer._learning_rate))
            self._opt_values[index] = ops.convert_to_tensor(np.float32(lr))
        else:
            self.opt.learning_rate = lr


def run_ours(opt, init, grads, lrs=None, mode="eager"):
    stepper = Stepper(opt, init, mode)
    for t, g in enumerate(grads):
        lr = None
        if lrs is not None and (t == 0 or lrs[t] != lrs[t - 1]):
            lr = lrs[t]
        stepper.step(g, lr)
    return stepper.params()


INNER = {
    "adamw": (lambda: oz.AdamW(learning_rate=0.05, weight_decay=0.1),
              lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.1)),
    "sgd": (lambda: oz.SGD(learning_rate=0.05, momentum=0.9),
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
}


@pytest.mark.parametrize("mode", harness.modes())
@pytest.mark.parametrize("inner", sorted(INNER))
def test_trajectory_matches_timm_lookahead(inner, mode):
    ours_inner, torch_inner = INNER[inner]
    init, grads = harness.problem(_Config())
    lrs = harness.lr_schedule_for({"learning_rate": 0.05}, 0.05)
    ours = run_ours(oz.Lookahead(ours_inner(), sync_period=5,
                                 slow_step_size=0.6), init, grads, lrs, mode)
    theirs = harness.run_torch(
        lambda ps: TimmLookahead(torch_inner(ps), alpha=0.6, k=5), init,
        grads, lrs)
    harness.assert_trajectory_close(ours, theirs, init,
                                    what="timm Lookahead")
    # and it is not the inner optimizer alone
    plain = harness.run_torch(torch_inner, init, grads, lrs)
    with pytest.raises(AssertionError):
        harness.assert_trajectory_close(ours, plain, init)


@pytest.mark.parametrize("k", [1, 3], ids=["ema", "accumulation"])
def test_schedule_clipping_ema_and_accumulation(k):
    """A schedule and global clipping, with EMA (k=1) or gradient
    accumulation over k micro-batches (Keras updates the EMA every
    micro-batch, so the two are checked apart)."""
    init, micro = harness.problem(_Config(), steps=12 * k)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 4, 0.7)
    extra = ({"use_ema": True, "ema_momentum": 0.8} if k == 1
             else {"gradient_accumulation_steps": k})
    opt = oz.Lookahead(oz.AdamW(learning_rate=schedule), sync_period=4,
                       global_clipnorm=1.0, **extra)
    # EMA: eager, as the generic test_ema
    stepper = Stepper(opt, init, "eager" if k == 1 else harness.modes()[-1])
    for g in micro:
        stepper.step(g)
    stepper.sync()
    ours = stepper.params()
    updates = len(micro) // k
    mean = [[np.mean([micro[u * k + j][i] for j in range(k)], axis=0)
             for i in range(len(init))] for u in range(updates)]
    clipped = []
    for g in mean:
        norm = np.sqrt(sum(np.sum(np.square(x, dtype=np.float64))
                           for x in g))
        clipped.append([(x * (1.0 / max(norm, 1.0))).astype("float32")
                        for x in g])
    lrs = [float(schedule(u)) for u in range(updates)]
    params = [torch.tensor(p, requires_grad=True) for p in init]
    ref = TimmLookahead(torch.optim.AdamW(params, lr=0.05), alpha=0.5, k=4)
    average = None
    for u, g in enumerate(clipped):
        ref.param_groups[0]["lr"] = lrs[u]
        for p, x in zip(params, g):
            p.grad = torch.tensor(x)
        ref.step()
        current = [p.detach().numpy().astype(np.float64) for p in params]
        average = current if average is None else [
            0.8 * a + 0.2 * c for a, c in zip(average, current)]
    harness.assert_trajectory_close(ours, current, init, what="timm")
    if k != 1:
        return
    opt.finalize_variable_values(stepper.vars)
    harness.assert_trajectory_close(stepper.params(), average, init,
                                    what="EMA of timm's params")


def test_get_config_round_trip_and_registry():
    opt = oz.Lookahead(oz.SGD(learning_rate=0.1, momentum=0.9),
                       sync_period=3, slow_step_size=0.25, clipnorm=2.0)
    cfg = opt.get_config()
    json.dumps(cfg)
    clone = oz.Lookahead.from_config(json.loads(json.dumps(cfg)))
    assert clone.get_config() == cfg
    assert type(clone.inner_optimizer) is oz.SGD
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is oz.Lookahead
    assert restored.get_config() == cfg
    by_name = oz.get("lookahead", optimizer="sgd", momentum=0.9,
                     learning_rate=0.1, sync_period=3, slow_step_size=0.25,
                     clipnorm=2.0)
    def unnamed(c):
        c = dict(c, name=None)
        c["optimizer"] = dict(c["optimizer"])
        c["optimizer"]["config"] = dict(c["optimizer"]["config"], name=None)
        return c

    assert unnamed(by_name.get_config()) == unnamed(cfg)
    with pytest.raises(ValueError, match="Lookahead needs the optimizer"):
        oz.get("lookahead")
    ranger = oz.get("ranger", learning_rate=3e-4)
    assert type(ranger.inner_optimizer).__name__ == "RAdam"
    assert ranger.inner_optimizer.beta_1 == 0.95
    assert ranger.sync_period == 6 and ranger.slow_step_size == 0.5


@pytest.mark.parametrize("kwargs,error,match", [
    ({"sync_period": 0}, ValueError, r"`sync_period` must be >= 1"),
    ({"slow_step_size": 1.5}, ValueError,
     r"Argument `slow_step_size` must be in \[0, 1\]"),
    ({"momentum": 0.9}, ValueError, r"Argument\(s\) not recognized"),
    ({"clipnorm": -1.0}, ValueError, r"Argument `clipnorm` must be > 0"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        oz.Lookahead(oz.AdamW(), **kwargs)


def test_inner_base_arguments_are_refused():
    with pytest.raises(ValueError, match="set clipping, EMA"):
        oz.Lookahead(oz.AdamW(clipnorm=1.0))


def _weights(model):
    return [ops.convert_to_numpy(w) for w in model.weights]


def test_fit_save_load_resume_bit_exact(tmp_path):
    x, y = harness.digits(192)
    model = harness.digits_model(
        oz.Lookahead(oz.AdamW(learning_rate=0.01), sync_period=4))
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    assert type(loaded.optimizer) is oz.Lookahead
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    names = [v.path for v in model.optimizer.variables]
    assert any("lookahead_slow" in n for n in names)
    assert len(names) == len(loaded.optimizer.variables)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(ops.convert_to_numpy(a),
                                      ops.convert_to_numpy(b))
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(_weights(model), _weights(loaded)):
        np.testing.assert_array_equal(a, b)


def test_reduce_lr_on_plateau_reaches_the_inner_optimizer():
    x, y = harness.digits(64)
    opt = oz.Lookahead(oz.AdamW(learning_rate=0.01))
    model = harness.digits_model(opt)
    callback = oz.callbacks.ReduceLROnPlateau(monitor="loss", patience=0,
                                              factor=0.5, threshold=10.0)
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
              callbacks=[callback])
    lr = float(ops.convert_to_numpy(model.optimizer.learning_rate))
    assert lr == pytest.approx(0.01 * 0.5 ** 3)
    assert float(ops.convert_to_numpy(
        model.optimizer.inner_optimizer.learning_rate)) == lr
