"""L-BFGS in Keras: full-batch training with `fit_lbfgs`, then a check that
the optimizer equals torch.optim.LBFGS (needs torch).

    python examples/lbfgs.py           # 1-D regression, 10 L-BFGS steps
    python examples/lbfgs.py --quick   # 3 steps (CI)

Fits a small tanh MLP to y = sin(3x) on 64 points (the kind of smooth,
full-batch problem L-BFGS is used for, e.g. PINNs), with the strong-Wolfe
line search, and prints the loss.

Then the check (needs torch): one L-BFGS step (up to 10 iterations with the
line search) from the same initial weights by `oz.LBFGS` and by
torch.optim.LBFGS, in float64. The script prints the largest weight
difference relative to how far the weights moved, and a verdict: PASS when
it is <= 1e-9 (the exit code is 1 on FAIL). In float64 the same algorithm
differs from torch only by summation order (~1e-13 here); a wrong rule (a
history update, a line-search condition) is off by orders of magnitude
more. Why only the first step, and why float64: this fit is chaotic for
L-BFGS. Started 1e-15 (relative) away, torch's own float64 run is ~1e-2
away after three steps (a line-search decision flips), so no two
implementations can be compared weight for weight past the first step; and
in float32, rounding alone puts torch's float32 step ~1e-5 from its
float64 step. The script prints both numbers for scale.
`--out` is accepted for symmetry with the other examples and unused.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_optzoo as oz  # noqa: E402
from keras_optzoo.optimizers.lbfgs import fit_lbfgs  # noqa: E402

#: The largest relative weight difference from torch's float64 run that
#: passes (see the module docstring for the reason).
TOLERANCE = 1e-9


def _float64():
    """Float64 for JAX too: JAX computes in float32 unless x64 is on."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def _mlp(params, x):
    """The network as a function of its weights, in float64 on every
    backend: `einsum` and a sigmoid-based tanh, because Keras 3.15 computes
    `ops.matmul` (torch backend), `ops.tanh` (JAX) and `ops.mean` (JAX,
    torch) of float64 operands in float32."""
    w1, b1, w2, b2 = params
    h = 2.0 * ops.sigmoid(2.0 * (ops.einsum("ni,io->no", x, w1) + b1)) - 1.0
    return ops.einsum("ni,io->no", h, w2) + b2


def _torch_run(init, x, y, dtype, steps):
    import torch

    params = [torch.tensor(w.astype(dtype), requires_grad=True) for w in init]
    tx, ty = torch.tensor(x.astype(dtype)), torch.tensor(y.astype(dtype))
    ref = torch.optim.LBFGS(params, max_iter=10, line_search_fn="strong_wolfe")

    def closure():
        ref.zero_grad()
        w1, b1, w2, b2 = params
        loss = torch.mean((torch.tanh(tx @ w1 + b1) @ w2 + b2 - ty) ** 2)
        loss.backward()
        return loss

    for _ in range(steps):
        ref.step(closure)
    return [p.detach().numpy().astype("float64") for p in params]


def _relative(a, b, init, reference):
    movement = max(np.max(np.abs(t - w)) for t, w in zip(reference, init))
    return max(np.max(np.abs(p - q)) for p, q in zip(a, b)) / movement


def check_against_torch(init, x, y):
    """One step of oz.LBFGS and of torch.optim.LBFGS from ``init``, in
    float64: their largest weight difference relative to the weights'
    movement."""
    with _float64():
        params = [keras.Variable(w.astype("float64"), dtype="float64")
                  for w in init]
        x64 = ops.convert_to_tensor(x.astype("float64"))
        y64 = ops.convert_to_tensor(y.astype("float64"))
        opt = oz.LBFGS(max_iter=10, line_search_fn="strong_wolfe")

        def loss_fn():
            # a sum over the count: ops.mean computes float64 in float32
            # on JAX and torch (Keras 3.15)
            return ops.sum(ops.square(_mlp(params, x64) - y64)) / len(x)

        opt.minimize(loss_fn, params)
        ours = [np.asarray(ops.convert_to_numpy(p), "float64")
                for p in params]
    theirs = _torch_run(init, x, y, "float64", 1)
    return _relative(ours, theirs, init, theirs)


def torch_sensitivity(init, x, y, steps):
    """For scale: (torch float32 vs float64 after one step; torch float64
    started 1e-15 relative away vs not, after ``steps`` steps)."""
    one = _torch_run(init, x, y, "float64", 1)
    float32 = _relative(_torch_run(init, x, y, "float32", 1), one, init, one)
    far = _torch_run(init, x, y, "float64", steps)
    nudged = _torch_run([w * (1.0 + 1e-15) for w in init], x, y, "float64",
                        steps)
    return float32, _relative(nudged, far, init, far)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 steps (CI)")
    parser.add_argument("--out", default="docs/images", help="unused")
    args = parser.parse_args(argv)
    steps = 3 if args.quick else 10

    x = np.linspace(-1, 1, 64, dtype="float32")[:, None]
    y = np.sin(3 * x).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)),
                              keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(1)])
    init = [np.asarray(keras.ops.convert_to_numpy(w), "float64")
            for w in model.weights]
    model.compile(optimizer=oz.LBFGS(max_iter=10,
                                     line_search_fn="strong_wolfe"),
                  loss="mse")
    losses = fit_lbfgs(model, x, y, steps=steps)
    final = float(keras.ops.convert_to_numpy(
        keras.losses.mean_squared_error(y[:, 0], model(x)[:, 0])))
    print(f"loss at the start of each step: "
          f"{', '.join(f'{v:.3g}' for v in losses)}; final {final:.3g}")

    deviation = check_against_torch(init, x, y)
    verdict = "PASS" if deviation <= TOLERANCE else "FAIL"
    print(f"check against torch.optim.LBFGS (one step, float64): max "
          f"|keras - torch| / weight movement = {deviation:.1e}, tolerance "
          f"{TOLERANCE:.0e}: {verdict}")
    float32, chaos = torch_sensitivity(init, x, y, steps)
    print(f"for scale: torch's float32 step is {float32:.1e} from its "
          f"float64 step; torch's float64 run started 1e-15 away is "
          f"{chaos:.1e} away after {steps} steps (why only one float64 step "
          "is compared)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
