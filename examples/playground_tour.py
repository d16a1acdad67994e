"""A tour of the optimizer playground: five optimizers on four 2-D surfaces.

    python examples/playground_tour.py            # 4 surfaces, 300 steps each
    python examples/playground_tour.py --quick    # rosenbrock only, 30 steps (CI)
    python examples/playground_tour.py --out DIR  # default docs/images

For rosenbrock, beale, himmelblau and saddle, runs sgd, momentum, nag, rmsprop
and adam from the surface's start (each with the playground's suggested
learning rate for that surface), writes ``playground_<function>.png`` (paths
on the contour plot and loss curves) and prints the summary tables.
The same is available from the shell: ``python -m keras_optzoo.playground``.
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from keras_optzoo import playground as pg  # noqa: E402

OPTIMIZERS = "sgd,momentum,nag,rmsprop,adam"
FUNCTIONS = ("rosenbrock", "beale", "himmelblau", "saddle")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="rosenbrock only, 30 steps (CI)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--out", default="docs/images",
                        help="folder for playground_<function>.png")
    args = parser.parse_args(argv)
    functions = FUNCTIONS[:1] if args.quick else FUNCTIONS
    steps = args.steps or (30 if args.quick else 300)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in functions:
        results = pg.compare(OPTIMIZERS, name, steps=steps)
        print(f"\n# {name}: {steps} steps\n")
        print(pg.summary_table(name, results))
        path = out / f"playground_{name}.png"
        pg.plot_comparison(name, results, str(path))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
