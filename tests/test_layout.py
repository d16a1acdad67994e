"""The layout rule (keras_optzoo/layout.py).

Oracle: torch's own layers. For each Keras layer kind, the torch layer given
``layout.to_torch(kernel)`` as its weight must compute the Keras layer's
output (channels moved where torch keeps them): so the tensor the rule
hands to every shape-dependent computation is the torch weight of the same
layer, not merely some tensor of the right shape.
"""

import numpy as np
import pytest
import torch

import keras
from keras import ops

import keras_optzoo as oz
from keras_optzoo import layout


def _np(x):
    return ops.convert_to_numpy(x)


def _torch_weight(variable, rule=None):
    rule = rule or layout.resolve(variable)
    return torch.tensor(_np(rule.to_torch(variable.value)))


def _channels_first(x):
    return np.moveaxis(x, -1, 1)


def _case(kind):
    """(Keras layer, input, torch forward(weight, x_channels_first))."""
    rng = np.random.default_rng(0)
    F = torch.nn.functional
    if kind == "dense":
        return (keras.layers.Dense(5, use_bias=False),
                rng.normal(size=(2, 3)).astype("float32"),
                lambda w, x: F.linear(x, w), False)
    if kind == "conv1d":
        return (keras.layers.Conv1D(4, 3, use_bias=False),
                rng.normal(size=(2, 7, 3)).astype("float32"),
                lambda w, x: F.conv1d(x, w), True)
    if kind == "conv2d":
        return (keras.layers.Conv2D(4, (3, 2), use_bias=False),
                rng.normal(size=(2, 6, 5, 3)).astype("float32"),
                lambda w, x: F.conv2d(x, w), True)
    if kind == "conv3d":
        return (keras.layers.Conv3D(2, 2, use_bias=False),
                rng.normal(size=(1, 4, 4, 4, 3)).astype("float32"),
                lambda w, x: F.conv3d(x, w), True)
    if kind == "conv2d_transpose":
        return (keras.layers.Conv2DTranspose(4, (3, 2), use_bias=False),
                rng.normal(size=(2, 5, 4, 3)).astype("float32"),
                lambda w, x: F.conv_transpose2d(x, w), True)
    if kind == "conv1d_transpose":
        return (keras.layers.Conv1DTranspose(4, 3, use_bias=False),
                rng.normal(size=(2, 5, 3)).astype("float32"),
                lambda w, x: F.conv_transpose1d(x, w), True)
    if kind == "depthwise_conv2d":
        return (keras.layers.DepthwiseConv2D(3, depth_multiplier=2,
                                             use_bias=False),
                rng.normal(size=(2, 6, 6, 3)).astype("float32"),
                lambda w, x: F.conv2d(x, w, groups=3), True)
    if kind == "depthwise_conv1d":
        return (keras.layers.DepthwiseConv1D(3, depth_multiplier=2,
                                             use_bias=False),
                rng.normal(size=(2, 7, 3)).astype("float32"),
                lambda w, x: F.conv1d(x, w, groups=3), True)
    raise AssertionError(kind)


KINDS = ["dense", "conv1d", "conv2d", "conv3d", "conv2d_transpose",
         "conv1d_transpose", "depthwise_conv2d", "depthwise_conv1d"]


@pytest.mark.parametrize("kind", KINDS)
def test_to_torch_is_the_torch_layers_weight(kind):
    layer, x, forward, channels = _case(kind)
    y = _np(layer(x))
    kernel = layer.trainable_variables[0]
    xt = torch.tensor(_channels_first(x) if channels else x)
    yt = forward(_torch_weight(kernel), xt).numpy()
    if channels:
        yt = np.moveaxis(yt, 1, -1)
    np.testing.assert_allclose(y, yt, rtol=1e-5, atol=1e-5)
    # and back
    rule = layout.resolve(kernel)
    back = _np(rule.from_torch(rule.to_torch(kernel.value)))
    np.testing.assert_array_equal(back, _np(kernel.value))


def test_separable_conv_is_depthwise_then_pointwise():
    layer = keras.layers.SeparableConv2D(4, 3, depth_multiplier=2,
                                         use_bias=False)
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype("float32")
    y = _np(layer(x))
    depthwise, pointwise = layer.trainable_variables
    assert layout.resolve(depthwise).kind == "depthwise"
    assert layout.resolve(pointwise).kind == "conv"
    h = torch.nn.functional.conv2d(torch.tensor(_channels_first(x)),
                                   _torch_weight(depthwise), groups=3)
    yt = torch.nn.functional.conv2d(h, _torch_weight(pointwise)).numpy()
    np.testing.assert_allclose(y, np.moveaxis(yt, 1, -1), rtol=1e-5,
                               atol=1e-5)


def test_multi_head_attention_kernels_are_linear_weights():
    """query (d, heads, dh) -> torch Linear (heads*dh, d); output
    (heads, dh, d) -> (d, heads*dh)."""
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    x = np.random.default_rng(2).normal(size=(1, 4, 5)).astype("float32")
    mha(x, x)
    by_name = {v.path.split("/")[-2]: v for v in mha.trainable_variables
               if v.path.endswith("kernel")}
    q = by_name["query"]
    rule = layout.resolve(q)
    assert rule.torch_shape == (6, 5)
    ours = _np(ops.einsum("btd,dhk->bthk", x, q.value)).reshape(1, 4, 6)
    theirs = torch.nn.functional.linear(torch.tensor(x),
                                        _torch_weight(q)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    out = by_name["attention_output"]
    assert layout.resolve(out).torch_shape == (5, 6)
    z = np.random.default_rng(3).normal(size=(1, 4, 2, 3)).astype("float32")
    ours = _np(ops.einsum("bthk,hkd->btd", z, out.value))
    theirs = torch.nn.functional.linear(torch.tensor(z.reshape(1, 4, 6)),
                                        _torch_weight(out)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_from_model_reads_the_layer_classes():
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((6, 6, 3)),
        layers.DepthwiseConv2D(3, name="dw"),
        layers.Conv2DTranspose(2, 2, name="up"),
        layers.Reshape((5 * 5, 2)),
        layers.EinsumDense("abc,cd->abd", output_shape=(None, 4),
                           name="proj"),
        layers.EinsumDense("abc,ce->ae", output_shape=(7,), name="mix"),
    ])
    layouts = oz.layout.from_model(model)
    kinds = {path.split("/")[-2]: kind for path, kind in layouts.items()}
    assert kinds == {"dw": "depthwise", "up": "conv_transpose",
                     "proj": "linear:0|1", "mix": "linear:0|1"}
    # from the path alone the renamed depthwise kernel reads as a conv
    dw = model.get_layer("dw").kernel
    assert layout.resolve(dw).kind == "conv"
    assert layout.resolve(dw, layouts).kind == "depthwise"


def test_inference_from_paths():
    cases = [("dense_3/kernel", (4, 5), "dense"),
             ("my_model/fc/kernel", (4, 5), "dense"),
             ("embedding/embeddings", (10, 4), "identity"),
             ("conv2d_transpose_2/kernel", (3, 3, 4, 2), "conv_transpose"),
             ("depthwise_conv2d/kernel", (3, 3, 4, 2), "depthwise"),
             ("stem/kernel", (3, 3, 4, 2), "conv"),
             ("mha/query/kernel", (8, 2, 4), "linear:0|1,2"),
             ("mha/attention_output/kernel", (2, 4, 8), "linear:0,1|2"),
             ("einsum_dense/kernel", (3, 4, 5), "identity"),
             ("dense/bias", (5,), "identity"),
             ("variable", (3, 4), "identity")]
    for path, shape, kind in cases:
        variable = keras.Variable(np.zeros(shape, "float32"),
                                  name=path.split("/")[-1])
        variable._path = path
        assert layout.infer(variable) == kind, path


def test_overrides_are_validated_in_keras_wording():
    with pytest.raises(ValueError, match=r"A layout must be one of"):
        oz.AdamP(layouts={".*": "sideways"})
    with pytest.raises(ValueError, match=r"Argument `layouts` must map "
                                         r"regular expressions"):
        oz.AdamP(layouts={"(": "dense"})
    with pytest.raises(TypeError, match=r"Argument `layouts` must be a "
                                        r"dict"):
        oz.AdamP(layouts=["dense"])
    with pytest.raises(ValueError, match=r"must name every axis"):
        layout.Layout("linear:0|0", (3, 4))


def test_layouts_are_saved_with_the_optimizer(tmp_path):
    model = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(2, name="fc")])
    model.compile(optimizer=oz.Adafactor(layouts={"fc/kernel$": "identity"}),
                  loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"),
              verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.optimizer.layouts == {"fc/kernel$": "identity"}
    # the factored statistics of the kernel follow the override: (3, 1)
    shapes = sorted(tuple(v.shape) for v in loaded.optimizer.variables
                    if "row_var" in v.path)
    assert (3, 1) in shapes


@pytest.mark.parametrize("kind,shape", [
    ("dense", (3, 4)), ("conv", (2, 3, 4, 5)), ("linear:0|1,2", (4, 2, 3)),
    ("depthwise", (3, 2, 2)), ("identity", (3, 4))])
def test_keepdims_views_of_torch_statistics(kind, shape):
    """A statistic reduced over torch's last or second-last axis (keepdims,
    Adafactor's row and column factors) viewed in the Keras layout
    (``from_torch``/``keepdims_from_torch``) is the full-size statistic
    mapped back, reduced; ``keepdims_to_torch`` is its inverse."""
    rule = layout.Layout(kind, shape)
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    t = _np(rule.to_torch(ops.convert_to_tensor(x)))
    for axis in (-1, -2):
        stat = t.mean(axis=axis, keepdims=True)
        full = _np(rule.from_torch(ops.convert_to_tensor(
            np.broadcast_to(stat, t.shape).copy())))
        view = _np(rule.from_torch(ops.convert_to_tensor(stat)))
        np.testing.assert_array_equal(np.broadcast_to(view, shape), full)
        axes, back = rule.keepdims_to_torch(view.shape)
        y = view if axes is None else view.transpose(axes)
        y = y if back is None else y.reshape(back)
        np.testing.assert_array_equal(y, stat)
        # the Keras axes of the torch axis: the same reduction
        keras_axes = rule.torch_axes()[axis]
        if keras_axes:
            np.testing.assert_allclose(
                x.mean(axis=keras_axes, keepdims=True), view, rtol=1e-6)
