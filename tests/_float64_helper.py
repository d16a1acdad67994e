"""float64 trajectories vs torch.optim in float64 (used by test_numerics.py).

On JAX, float64 needs ``jax_enable_x64``, which must be set before JAX
creates any array and changes default dtypes for the whole process; the test
runs this file in a subprocess there (``JAX_ENABLE_X64=1``). On TF and torch
it is imported and called in-process.

Run as a script it prints ``{"spec-config": relative deviation, ...}`` as one
JSON line for every (optimizer, float64 config).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402  (torch before TF, as in conftest.py)

import numpy as np  # noqa: E402
import keras  # noqa: E402

import specs  # noqa: E402

#: Steps per case. A float32 quantity anywhere in the update shows within a
#: step or two (float32 rounding is ~1e-8 relative, the tolerance 1e-11);
#: 20 steps pass every branch an update takes on a schedule (SOAP's first
#: eigenbasis refresh at its precondition_frequency of 10, schedule-free's
#: warm-up, D-Adaptation's growing estimate). The CI budget: eager float64
#: steps of the 8-bit optimizers cost ~0.3 s each on TensorFlow.
STEPS = 20
#: config ids run in float64 (the first config of every spec, plus these)
EXTRA = {"sgd": ["nesterov"], "adam": ["amsgrad"], "rmsprop": [
    "centered_momentum_wd"], "nadam": ["wd_decoupled"]}


def cases():
    out = []
    for spec in specs.SPECS:
        ids = [spec.configs[0].id] + EXTRA.get(spec.name, [])
        out += [(spec, spec.config(i)) for i in ids]
    return out


def deviation(spec, config):
    """max |ours − torch| / max |torch − θ0|, both in float64."""
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (5,), ()]
    init = [config.param_scale * rng.normal(size=s) for s in shapes]
    grads = [[config.grad_scale * rng.normal(size=s) for s in shapes]
             for _ in range(STEPS)]
    variables = [keras.Variable(p, dtype="float64") for p in init]
    assert all(str(v.dtype) == "float64" for v in variables)
    opt = spec.cls(**config.kwargs)
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(x, "float64") for x in g],
                  variables)
    ours = [keras.ops.convert_to_numpy(v) for v in variables]
    assert all(o.dtype == np.float64 for o in ours)
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True)
              for p in init]
    kwargs = dict(config.kwargs)
    # Keras holds a float lr in a float32 variable: torch gets that value.
    lr = kwargs.get("learning_rate",
                    spec.cls().get_config()["learning_rate"])
    kwargs["learning_rate"] = float(np.float32(lr))
    # torch keeps its scalar state (step, NAdam's mu_product) in the
    # default dtype: float32 unless told otherwise, which costs ~1e-9 there.
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        topt = specs.make_torch(spec, params, kwargs)
        for g in grads:
            for p, x in zip(params, g):
                p.grad = torch.tensor(x, dtype=torch.float64)
            topt.step()
    finally:
        torch.set_default_dtype(default)
    theirs = [p.detach().numpy() for p in params]
    scale = max(float(np.max(np.abs(t - i))) for t, i in zip(theirs, init))
    dev = max(float(np.max(np.abs(o - t))) for o, t in zip(ours, theirs))
    return dev / scale


def main():
    result = {f"{s.name}-{c.id}": deviation(s, c) for s, c in cases()}
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
