"""Adafactor beyond the generic spec tests: factored state shapes (torch's
choice of the last two dimensions), sublinear state bytes, machine epsilon
per dtype."""

import ml_dtypes
import numpy as np

import keras

import harness
import specs
import keras_optzoo as oz

SPEC = specs.SPECS_BY_NAME["adafactor"]


def _slot_shapes(opt):
    return {v.name: tuple(v.shape) for v in opt.variables
            if v.name.startswith(("row_var", "col_var")) or
            "variance" in v.name}


def test_factored_dims_match_torch_for_3d_and_4d():
    import torch

    shapes = [(2, 3, 4), (2, 2, 3, 5), (7,), ()]
    variables = [keras.Variable(np.ones(s, "float32")) for s in shapes]
    opt = oz.Adafactor()
    opt.build(variables)
    params = [torch.ones(s, requires_grad=True) for s in shapes]
    torch_opt = torch.optim.Adafactor(params)
    for p in params:
        p.grad = torch.ones_like(p)
    torch_opt.step()
    for i, p in enumerate(params):
        state = torch_opt.state[p]
        if "row_var" in state:
            assert tuple(opt._slots["row_var"][i].shape) == \
                tuple(state["row_var"].shape)
            assert tuple(opt._slots["col_var"][i].shape) == \
                tuple(state["col_var"].shape)
        else:
            assert tuple(opt._slots["variance"][i].shape) == \
                tuple(state["variance"].shape)


def test_3d_trajectory_matches_torch():
    config = SPEC.config("decay_clip")
    init, grads = harness.problem(config, steps=20,
                                  shapes=[(3, 4, 5), (2, 2, 3, 2)])
    ours = harness.run_ours(oz.Adafactor(**config.kwargs), init, grads)
    theirs = harness.run_torch(
        lambda ps: specs.make_torch(SPEC, ps, config.kwargs), init, grads)
    harness.assert_trajectory_close(ours, theirs, init)


def state_bytes(optimizer_cls, shape, **kwargs):
    """Bytes of per-variable optimizer state for one float32 variable."""
    variable = keras.Variable(np.zeros(shape, "float32"))
    opt = optimizer_cls(**kwargs)
    opt.build([variable])
    empty = optimizer_cls(**kwargs)
    empty.build([])
    size = lambda o: sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                         for v in o.variables)
    return size(opt) - size(empty)


def test_state_is_sublinear_for_a_1024_kernel():
    ours = state_bytes(oz.Adafactor, (1024, 1024))
    adam = state_bytes(oz.Adam, (1024, 1024))
    assert ours == (1024 + 1024) * 4
    assert adam == 2 * 1024 * 1024 * 4


def test_epsilon_1_none_is_machine_epsilon_of_the_dtype():
    opt = oz.Adafactor()
    for dtype in ("float64", "float32", "float16", "bfloat16"):
        eps = opt._epsilon_1(dtype)
        ref = ml_dtypes.finfo(ml_dtypes.bfloat16).eps if dtype == "bfloat16" \
            else np.finfo(dtype).eps
        assert eps == float(ref), dtype
    assert oz.Adafactor(epsilon_1=1e-5)._epsilon_1("float16") == 1e-5


#: a variable of every layout kind (``keras_optzoo.layout``): the factored
#: statistics of each are over its torch tensor's last two axes
LAYOUT_CASES = [((3, 4), "dense"), ((5,), None), ((), None),
                ((3, 2, 2, 4), "conv"), ((4, 2, 3), "linear:0|1,2"),
                ((3, 2, 2), "depthwise"), ((6, 5), None), ((1, 4), "dense")]


def test_multi_tensor_path_reads_every_layout():
    """On torch the fast path (views of the factored slots, reductions over
    the Keras axes that make a torch axis) equals the per-variable path for
    every layout kind, and after the first step the update is replayed
    (``fastpath/replay.py``: one trace per group, factored and not);
    elsewhere both runs are the generic path."""
    names = [f"v{i}" for i in range(len(LAYOUT_CASES))]
    layouts = {f"^v{i}$": kind for i, (_, kind) in enumerate(LAYOUT_CASES)
               if kind}
    config = SPEC.config("wd")
    init, grads = harness.problem(config, steps=6,
                                  shapes=[s for s, _ in LAYOUT_CASES])
    assert_fast_path_equals_generic(
        lambda: oz.Adafactor(layouts=layouts, **config.kwargs), init, grads,
        names)


def assert_fast_path_equals_generic(make, init, grads, names):
    """Runs ``make()`` with the multi-tensor path off and on (torch; both
    generic elsewhere): equal within float32 rounding, and on torch the
    fast path ran and replayed every step after the first, one trace per
    group (factored and not)."""
    runs = []
    for mode in (False, None):
        opt = make()
        opt.use_multi_tensor = mode
        runs.append(harness.run_ours(opt, init, grads, names=names))
    if harness.backend() == "torch":
        assert opt.update_path == "foreach"
        state = opt._multi_tensor
        assert state.disabled is None and state.not_replayed is None
        assert state.replayed == 2 * (len(grads) - 1)
    for fast, generic in zip(*runs[::-1]):
        np.testing.assert_allclose(fast, generic, rtol=1e-6, atol=1e-7)
