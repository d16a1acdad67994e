"""Kron step time on JAX (jit, CPU): an update step (probe + factor fit)
vs a plain step (preconditioning only), 512x512 Dense kernel, and timm's
step on torch CPU for scale. KERAS_BACKEND=jax python benchmarks/kron_step_time.py
"""
import sys, time; import os; ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))); sys.path[:0] = [os.path.join(ROOT, "tests"), ROOT]
import numpy as np, keras, jax
import keras_optzoo as oz, harness
from keras import ops
shape = (512, 512)
rng = np.random.default_rng(0)
init = [rng.normal(size=shape).astype("float32")]
g = [rng.normal(size=shape).astype("float32")]
for prob, label in [(1.0, "update every step"), (0.01, "plain step (no update)")]:
    st = harness.Stepper(oz.Kron(seed=0, preconditioner_update_probability=prob), init, "compiled", names=["kernel"])
    st.step(g); jax.block_until_ready(st._var_values)
    t = time.perf_counter()
    for _ in range(20): st.step(g)
    jax.block_until_ready(st._var_values)
    print(label, f"{(time.perf_counter()-t)/20*1e3:.1f} ms/step")
import torch
from reference.external import timm_optim
k = timm_optim("kron")
p = torch.tensor(init[0].T.copy(), requires_grad=True)
t_opt = k.Kron([p], preconditioner_update_probability=1.0)
for n in ("_calc_A_and_conjB", "_q_terms", "_precond_grad", "_balance_Q"): setattr(t_opt, n, getattr(k, n))
p.grad = torch.tensor(g[0].T.copy()); t_opt.step()
t = time.perf_counter()
for _ in range(20): t_opt.step()
print("timm (uncompiled helpers, torch CPU) update every step", f"{(time.perf_counter()-t)/20*1e3:.1f} ms/step")
