"""Command line: race optimizers on a 2-D surface and save the pictures.

    python -m keras_optzoo.playground --function rosenbrock \\
        --optimizers sgd,momentum,nag,adam --steps 300 --out results [--gif]

writes ``results/rosenbrock.png`` (paths over the contours and loss curves),
``results/rosenbrock.md`` (a summary table, also printed) and, with ``--gif``,
``results/rosenbrock.gif``. ``--list`` shows the surfaces and optimizers.

Optimizers are registry specs; options for one optimizer follow a colon:
``--optimizers "sgd,adam:learning_rate=0.05,amsgrad=True"``. Without an
explicit ``learning_rate`` each optimizer gets the playground's suggested
rate for the surface. A negative start needs the ``=`` form:
``--start=-1.5,2``.
"""

import argparse
import os
import sys

DEFAULT_OPTIMIZERS = "sgd,momentum,nag,adam"


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m keras_optzoo.playground",
        description="Run optimizers on a 2-D test function and plot their paths.",
        epilog="Example: python -m keras_optzoo.playground --function beale "
        "--optimizers 'sgd,adam:learning_rate=0.02' --gif --out results",
    )
    parser.add_argument("--function", default="rosenbrock",
                        help="test function name (default: %(default)s)")
    parser.add_argument(
        "--optimizers", action="append", metavar="SPECS",
        help="comma-separated registry specs such as 'adam' or "
        "'adam:learning_rate=0.05,amsgrad=True'; may be repeated "
        f"(default: {DEFAULT_OPTIMIZERS})",
    )
    parser.add_argument("--steps", type=int, default=300,
                        help="updates per optimizer (default: %(default)s)")
    parser.add_argument("--start", metavar="X,Y",
                        help="starting point; use --start=-1,2 for negative x "
                        "(default: the function's own start)")
    parser.add_argument("--tol", type=float, default=1e-2,
                        help="distance to a minimum that counts as reached "
                        "(default: %(default)s)")
    parser.add_argument("--out", default=".", help="output folder (default: .)")
    parser.add_argument("--gif", action="store_true", help="also write an animated GIF")
    parser.add_argument("--frames", type=int, default=60,
                        help="GIF frames (default: %(default)s)")
    parser.add_argument("--list", action="store_true",
                        help="list the functions and optimizers, then exit")
    return parser


def _parse_start(parser, text):
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        parser.error(f"argument --start: expected 'X,Y' with two numbers, got {text!r}")
    return (x, y)


def _print_list(list_optimizers):
    from keras_optzoo.playground.functions import FUNCTIONS

    print("Functions:")
    width = max(len(n) for n in FUNCTIONS)
    for name, surface in FUNCTIONS.items():
        print(f"  {name:<{width}}  {surface.description}")
    print("Optimizers:")
    print("  " + ", ".join(list_optimizers()))


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)

    # Imported after parsing so that --help stays fast.
    from keras_optzoo.playground import plot, trajectory
    from keras_optzoo.playground.functions import get_function

    _, list_optimizers = trajectory._registry()
    if args.list:
        _print_list(list_optimizers)
        return 0

    try:
        function = get_function(args.function)
    except ValueError as e:
        parser.error(f"argument --function: {e}")
    if args.steps < 0:
        parser.error(f"argument --steps: must be >= 0, got {args.steps}")
    start = _parse_start(parser, args.start)

    specs = []
    for text in args.optimizers or [DEFAULT_OPTIMIZERS]:
        try:
            specs.extend(trajectory.split_specs(text))
        except ValueError as e:
            parser.error(f"argument --optimizers: {e}")
    if not specs:
        parser.error("argument --optimizers: no optimizer given")
    known = set(list_optimizers())
    optimizers = {}
    for spec in specs:
        try:
            name, _ = trajectory.parse_spec(spec)
            if name not in known:
                raise ValueError(
                    f"unknown optimizer {name!r}; known: {', '.join(sorted(known))}"
                )
            # Build now so bad arguments fail before any run starts.
            optimizers[spec] = trajectory.make_optimizer(spec, function)
        except (ValueError, TypeError) as e:
            parser.error(f"argument --optimizers: {spec!r}: {e}")

    results = trajectory.compare(optimizers, function, steps=args.steps, start=start)

    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, function.name)
    table = plot.summary_table(function, results, tol=args.tol)
    shown_start = start if start is not None else function.start
    heading = (
        f"# {function.name}: {args.steps} steps from "
        f"({shown_start[0]:g}, {shown_start[1]:g})\n\n"
    )
    with open(base + ".md", "w", encoding="utf-8") as fh:
        fh.write(heading + table)
    written = [plot.plot_comparison(function, results, base + ".png"), base + ".md"]
    if args.gif:
        written.append(plot.animate(function, results, base + ".gif", frames=args.frames))

    print(heading + table)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
