"""Kron vs timm 1.0.31: max deviation per config and mode on the active
backend, and timm's own float32-vs-float64 gap (relative to the movement).

    cd <repo> && PYTHONPATH=$PWD:$PWD/tests KERAS_BACKEND=jax \
        python benchmarks/kron_deviation.py
"""
import numpy as np

import harness
import specs

spec = specs.SPECS_BY_NAME["kron"]
lr_default = 0.001


def rel(a, b, init):
    scale = max(float(np.max(np.abs(np.asarray(r, np.float64) - i)))
                for r, i in zip(b, init))
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - y)))
               for x, y in zip(a, b)) / scale


for config in spec.configs:
    init, grads = harness.problem(config)
    lrs = harness.lr_schedule_for(config.kwargs, lr_default)
    ref32 = harness.run_torch(
        lambda ps: specs.make_torch(spec, ps, config.kwargs), init, grads, lrs)
    import torch
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True)
              for p in init]
    opt = specs.make_torch(spec, params, config.kwargs)
    for t, g in enumerate(grads):
        for group in opt.param_groups:
            group["lr"] = lrs[t]
        for p, gi in zip(params, g):
            p.grad = torch.tensor(gi, dtype=torch.float64)
        opt.step()
    ref64 = [p.detach().numpy() for p in params]
    line = f"{config.id:18s} timm f32-vs-f64 gap {rel(ref32, ref64, init):.2e}"
    for mode in harness.modes():
        ours = harness.run_ours(spec.cls(**config.kwargs), init, grads, lrs,
                                mode)
        line += f"  {mode}: vs timm {rel(ours, ref32, init):.2e}"
    print(line, flush=True)
