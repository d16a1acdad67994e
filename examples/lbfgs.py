"""L-BFGS in Keras: full-batch training with `fit_lbfgs`, checked against
torch.optim.LBFGS running the same closure.

    python examples/lbfgs.py           # 1-D regression, 10 L-BFGS steps
    python examples/lbfgs.py --quick   # 3 steps (CI)

Fits a small tanh MLP to y = sin(3x) on 64 points (the kind of smooth,
full-batch problem L-BFGS is used for, e.g. PINNs), with the strong-Wolfe
line search, then trains the same network with torch.optim.LBFGS and prints
the largest weight difference. `--out` is accepted for symmetry with the
other examples and unused.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_optzoo as oz  # noqa: E402
from keras_optzoo.optimizers.lbfgs import fit_lbfgs  # noqa: E402


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
    init = [keras.ops.convert_to_numpy(w) for w in model.weights]
    model.compile(optimizer=oz.LBFGS(max_iter=10,
                                     line_search_fn="strong_wolfe"),
                  loss="mse")
    losses = fit_lbfgs(model, x, y, steps=steps)
    final = float(keras.ops.convert_to_numpy(
        keras.losses.mean_squared_error(y[:, 0], model(x)[:, 0])))
    print(f"loss at the start of each step: "
          f"{', '.join(f'{v:.3g}' for v in losses)}; final {final:.3g}")

    import torch

    w1, b1, w2, b2 = (torch.tensor(w, requires_grad=True) for w in init)
    tx, ty = torch.tensor(x), torch.tensor(y)
    ref = torch.optim.LBFGS([w1, b1, w2, b2], max_iter=10,
                            line_search_fn="strong_wolfe")

    def closure():
        ref.zero_grad()
        loss = torch.mean((torch.tanh(tx @ w1 + b1) @ w2 + b2 - ty) ** 2)
        loss.backward()
        return loss

    for _ in range(steps):
        ref.step(closure)
    dev = max(float(np.max(np.abs(keras.ops.convert_to_numpy(a)
                                  - b.detach().numpy())))
              for a, b in zip(model.weights, (w1, b1, w2, b2)))
    print(f"max |keras - torch| over the weights: {dev:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
