"""The optimizer playground: watch optimizers move on 2-D test functions.

    from keras_optzoo import playground as pg

    results = pg.compare(["sgd", "momentum", "adam:learning_rate=0.05"], "rosenbrock")
    print(pg.summary_table("rosenbrock", results))
    pg.plot_comparison("rosenbrock", results, "rosenbrock.png")

or from the shell: ``python -m keras_optzoo.playground --function beale --gif``.

`run` accepts any Keras optimizer (keras-optzoo's, a Keras built-in, one with a
learning-rate schedule) and differentiates with the active backend. Plotting
needs matplotlib (and pillow for GIFs); both are imported only when used.
"""

from keras_optzoo.playground.functions import FUNCTIONS
from keras_optzoo.playground.functions import Surface
from keras_optzoo.playground.functions import get_function
from keras_optzoo.playground.functions import list_functions
from keras_optzoo.playground.plot import animate
from keras_optzoo.playground.plot import plot_comparison
from keras_optzoo.playground.plot import plot_contour
from keras_optzoo.playground.plot import plot_losses
from keras_optzoo.playground.plot import summary_table
from keras_optzoo.playground.trajectory import SUGGESTED_LEARNING_RATES
from keras_optzoo.playground.trajectory import Trajectory
from keras_optzoo.playground.trajectory import TrajectorySummary
from keras_optzoo.playground.trajectory import compare
from keras_optzoo.playground.trajectory import make_optimizer
from keras_optzoo.playground.trajectory import parse_spec
from keras_optzoo.playground.trajectory import run
from keras_optzoo.playground.trajectory import split_specs
from keras_optzoo.playground.trajectory import suggested_learning_rate
from keras_optzoo.playground.trajectory import value_and_grad

__all__ = [
    "FUNCTIONS",
    "Surface",
    "get_function",
    "list_functions",
    "run",
    "compare",
    "Trajectory",
    "TrajectorySummary",
    "value_and_grad",
    "parse_spec",
    "split_specs",
    "make_optimizer",
    "suggested_learning_rate",
    "SUGGESTED_LEARNING_RATES",
    "plot_contour",
    "plot_losses",
    "plot_comparison",
    "animate",
    "summary_table",
]
