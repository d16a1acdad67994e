"""The layout rule: how a Keras variable maps to the tensor torch would hold.

Keras and torch store the same layer's weights in different layouts:

==========================  ==========================  ==========================
layer                       Keras variable              torch parameter
==========================  ==========================  ==========================
Dense / EinsumDense 2-D     ``(in, out)``               ``Linear.weight (out, in)``
ConvND                      ``(k..., in, out)``         ``(out, in, k...)``
ConvNDTranspose             ``(k..., out, in)``         ``(in, out, k...)``
DepthwiseConvND             ``(k..., in, mult)``        ``(in*mult, 1, k...)``
SeparableConvND             depthwise + pointwise       depthwise + ``(out, in, 1..)``
Embedding                   ``(vocab, dim)``            ``(vocab, dim)``
EinsumDense (rank > 2)      input and output axes       ``(prod(out), prod(in))``
everything else             as is                       as is
==========================  ==========================  ==========================

Every shape-dependent computation of the package (AdamP/SGDP's channel
view, Adafactor's factored statistics, the per-unit norms of adaptive
gradient clipping and gradient centralization, Muon's learning-rate scaling,
LazyAdam's rows, and every matrix or blockwise optimizer) reads a variable
through this module, so that an optimizer run on a Keras model equals its
reference run on the same model written in torch.

Which layout a variable has is decided once, in the optimizer's ``build``,
from the variable's path and shape (:func:`infer`):

* the last path component names the weight (``kernel``, ``embeddings``,
  ``depthwise_kernel``, ``pointwise_kernel``);
* the layer's name (the path component before it) tells the layer class when
  it is Keras's default name (``conv2d_transpose_1``, ``depthwise_conv2d``,
  ``einsum_dense``); Keras's ``MultiHeadAttention`` sublayers (``query``,
  ``key``, ``value``, ``attention_output``) are EinsumDense layers of known
  equations;
* otherwise a 2-D ``kernel`` is a Dense kernel and a 3-D to 5-D ``kernel``
  a convolution kernel (the layers that create variables of those names).

A layer with a name of your own whose class the path cannot tell (a
``Conv2DTranspose`` named ``"up"``, an ``EinsumDense`` named ``"proj"``), or
a custom layer, takes an override. Every keras-optzoo optimizer accepts
``layouts=``, a dict ``{regex: layout}`` matched (``re.search``) against the
variable's path in order, the first match winning; :func:`from_model`
builds that dict exactly from a built model's layer classes::

    optimizer = oz.AdamP(layouts=oz.layout.from_model(model))
    optimizer = oz.AdamP(layouts={r"/up/kernel$": "conv_transpose"})

A layout is written as a string (so it is saved with the optimizer's
config): ``"dense"``, ``"conv"``, ``"conv_transpose"``, ``"depthwise"``,
``"identity"``, or ``"linear:IN|OUT"`` with the comma-separated input and
output axes of a Keras kernel (``"linear:0|1,2"`` is a ``query`` kernel of
``MultiHeadAttention``, torch's ``(heads*head_dim, hidden)``). The Keras-
native reading (every variable as it is stored, what this package did
before the rule) is ``layouts={".*": "identity"}``.
"""

import math
import re

from keras import ops

#: the string forms a layout may take (besides "linear:IN|OUT")
KINDS = ("identity", "dense", "conv", "conv_transpose", "depthwise")

_LINEAR = re.compile(r"^linear:(\d+(?:,\d+)*)\|(\d+(?:,\d+)*)$")

# Keras MultiHeadAttention's EinsumDense sublayers: (input axes, output
# axes) of their kernels (query/key/value "abc,cde->abde", output
# "abcd,cde->abe" for rank-3 inputs)
_ATTENTION = {"query": "linear:0|1,2", "key": "linear:0|1,2",
              "value": "linear:0|1,2", "attention_output": "linear:0,1|2"}


class Layout:
    """How one Keras variable of shape ``shape`` maps to its torch tensor.

    ``to_torch(x)`` gives the torch tensor (a transpose, then for depthwise
    and linear layouts a reshape), ``from_torch(y)`` the inverse; both are
    ``keras.ops`` calls usable inside compiled steps. ``torch_shape`` is the
    torch tensor's shape; ``kind`` the layout's string form.
    """

    __slots__ = ("kind", "shape", "perm", "torch_shape", "_permuted")

    def __init__(self, kind, shape):
        shape = tuple(int(d) for d in shape)
        kind = check(kind)
        rank = len(shape)
        perm = tuple(range(rank))
        torch_shape = None
        match = _LINEAR.match(kind)
        if kind == "dense" and rank == 2:
            perm = (1, 0)
        elif kind in ("conv", "conv_transpose") and rank >= 3:
            # (k..., a, b) -> (b, a, k...): conv (in, out) -> (out, in),
            # transposed (out, in) -> (in, out)
            perm = (rank - 1, rank - 2) + tuple(range(rank - 2))
        elif kind == "depthwise" and rank >= 3:
            perm = (rank - 2, rank - 1) + tuple(range(rank - 2))
            torch_shape = (shape[-2] * shape[-1], 1) + shape[:-2]
        elif match and rank >= 2:
            ins = tuple(int(a) for a in match.group(1).split(","))
            outs = tuple(int(a) for a in match.group(2).split(","))
            if sorted(ins + outs) != list(range(rank)):
                raise ValueError(
                    f"Layout {kind!r} must name every axis of a variable of "
                    f"shape {shape} once. Received: {kind!r}")
            perm = outs + ins
            torch_shape = (math.prod(shape[a] for a in outs),
                           math.prod(shape[a] for a in ins))
        elif kind != "identity":
            kind = "identity"  # a layout that does not fit the rank
        permuted = tuple(shape[a] for a in perm)
        if torch_shape is None:
            torch_shape = permuted
        self.kind = kind
        self.shape = shape
        self.perm = perm
        self.torch_shape = torch_shape
        self._permuted = permuted

    @property
    def is_identity(self):
        return self.perm == tuple(range(len(self.shape))) and \
            self.torch_shape == self.shape

    def to_torch(self, x):
        """The torch tensor of a value laid out as the Keras variable."""
        if self.is_identity:
            return x
        if self.perm != tuple(range(len(self.perm))):
            x = ops.transpose(x, self.perm)
        if self.torch_shape != self._permuted:
            x = ops.reshape(x, self.torch_shape)
        return x

    def from_torch(self, y):
        """The inverse of :meth:`to_torch`. ``y`` may also be
        keepdims-shaped (a statistic reduced over some torch axes with
        ``keepdims=True``, such as Adafactor's row and column factors): it
        then comes back keepdims-shaped in the Keras layout
        (:meth:`keepdims_from_torch`), so that it broadcasts against the
        variable."""
        if self.is_identity:
            return y
        shape = tuple(y.shape)
        if shape != self.torch_shape and None not in shape:
            # (an unknown dimension: a densified gradient in a tf.function,
            # read as the full tensor, as before)
            shape, axes = self.keepdims_from_torch(shape)
            if shape is not None:
                y = ops.reshape(y, shape)
            return y if axes is None else ops.transpose(y, axes)
        if self.torch_shape != self._permuted:
            y = ops.reshape(y, self._permuted)
        if self.perm != tuple(range(len(self.perm))):
            inverse = [0] * len(self.perm)
            for i, axis in enumerate(self.perm):
                inverse[axis] = i
            y = ops.transpose(y, inverse)
        return y

    def torch_axes(self):
        """For each axis of the torch tensor, the Keras axes it is made of
        (in the order the reshape merges them; none for the size-1 axis of
        a depthwise kernel): a reduction over torch axis ``i`` is one over
        Keras axes ``torch_axes()[i]``."""
        rank = len(self.shape)
        if self.kind == "depthwise":
            return ((rank - 2, rank - 1), ()) + tuple(
                (a,) for a in range(rank - 2))
        match = _LINEAR.match(self.kind)
        if match:
            return tuple(tuple(int(a) for a in match.group(g).split(","))
                         for g in (2, 1))
        return tuple((a,) for a in self.perm)

    def _keepdims_groups(self, torch_keepdims):
        """The Keras keepdims shape, in torch's axis order (the permuted
        shape), of a torch keepdims shape; ValueError where it is not one
        (a torch axis neither whole nor reduced to 1)."""
        permuted = []
        for size, full, group in zip(torch_keepdims, self.torch_shape,
                                     self.torch_axes()):
            if size == full:
                permuted.extend(self.shape[a] for a in group)
            elif size == 1:
                permuted.extend(1 for _ in group)
            else:
                raise ValueError(
                    f"{torch_keepdims} is not a keepdims shape of the torch "
                    f"tensor {self.torch_shape} ({self!r})")
        return tuple(permuted)

    def keepdims_from_torch(self, torch_keepdims):
        """``(shape, axes)``: a keepdims-shaped torch statistic of shape
        ``torch_keepdims`` reshaped to ``shape`` and transposed by ``axes``
        (either None: not needed) is the same statistic keepdims-shaped in
        the Keras layout. Views, with no arithmetic: elementwise math on the
        views equals the math in the torch layout, viewed."""
        if len(torch_keepdims) != len(self.torch_shape):
            raise ValueError(
                f"{torch_keepdims} is not a keepdims shape of the torch "
                f"tensor {self.torch_shape} ({self!r})")
        permuted = self._keepdims_groups(tuple(torch_keepdims))
        shape = permuted if permuted != tuple(torch_keepdims) else None
        axes = None
        if self.perm != tuple(range(len(self.perm))):
            axes = [0] * len(self.perm)
            for i, axis in enumerate(self.perm):
                axes[axis] = i
            axes = tuple(axes)
        return shape, axes

    def keepdims_to_torch(self, keras_keepdims):
        """``(axes, shape)``: the inverse of :meth:`keepdims_from_torch`: a
        keepdims-shaped statistic in the Keras layout transposed by
        ``axes`` and reshaped to ``shape`` (either None: not needed) is the
        torch layout's."""
        keras_keepdims = tuple(keras_keepdims)
        axes = self.perm if self.perm != tuple(range(len(self.perm))) \
            else None
        torch_keepdims = tuple(
            1 if all(keras_keepdims[a] == 1 for a in group) and
            any(self.shape[a] != 1 for a in group) else full
            for full, group in zip(self.torch_shape, self.torch_axes()))
        permuted = self._keepdims_groups(torch_keepdims)
        if permuted != tuple(keras_keepdims[a] for a in self.perm):
            raise ValueError(
                f"{keras_keepdims} is not a keepdims shape of the Keras "
                f"variable {self.shape} ({self!r})")
        shape = torch_keepdims if torch_keepdims != permuted else None
        return axes, shape

    @property
    def matrix(self):
        """The torch tensor as the matrix ``(torch_shape[0], rest)`` (its
        first axis by the others flattened, how the matrix optimizers read
        a convolution kernel): a :class:`MatrixView`, usable wherever a
        layout's ``to_torch``/``from_torch`` are (``MATH.per_matrix``)."""
        return MatrixView(self)

    @property
    def unit_axes(self):
        """The Keras axes that form torch's first axis (the output units
        of a layer: a Dense kernel's last axis, an Embedding's rows)."""
        if self.kind == "depthwise":
            return tuple(self.perm[:2])
        if _LINEAR.match(self.kind):
            return tuple(int(a) for a in
                         _LINEAR.match(self.kind).group(2).split(","))
        return (self.perm[0],) if self.perm else ()

    def __repr__(self):
        return (f"Layout({self.kind!r}, keras {self.shape} -> torch "
                f"{self.torch_shape})")


class MatrixView:
    """A variable read as its torch tensor flattened to a matrix ``(m, n)``:
    ``m = torch_shape[0]``, ``n`` the product of the other axes (a tensor
    that is 2-D in torch is not reshaped). ``to_torch``/``from_torch`` as
    :class:`Layout`'s, ``shape`` the matrix's shape."""

    __slots__ = ("layout", "shape")

    def __init__(self, layout):
        self.layout = layout
        rows = int(layout.torch_shape[0]) if layout.torch_shape else 1
        self.shape = (rows, math.prod(int(d) for d in
                                      layout.torch_shape[1:]))

    def to_torch(self, x):
        x = self.layout.to_torch(x)
        if tuple(self.layout.torch_shape) != self.shape:
            x = ops.reshape(x, self.shape)
        return x

    def from_torch(self, y):
        if tuple(self.layout.torch_shape) != self.shape:
            y = ops.reshape(y, self.layout.torch_shape)
        return self.layout.from_torch(y)

    def __repr__(self):
        return f"MatrixView({self.layout!r} as {self.shape})"


def check(kind):
    """Validates a layout string; returns it."""
    if isinstance(kind, str) and (kind in KINDS or _LINEAR.match(kind)):
        return kind
    raise ValueError(
        "A layout must be one of " + ", ".join(repr(k) for k in KINDS)
        + " or 'linear:IN|OUT' (comma-separated Keras kernel axes). "
        f"Received: {kind!r}")


def check_overrides(layouts):
    """Validates an optimizer's ``layouts=`` argument (None or a dict of
    regex -> layout string); returns a plain dict."""
    if layouts is None:
        return None
    if not isinstance(layouts, dict):
        raise TypeError(
            "Argument `layouts` must be a dict {regex: layout} (see "
            "keras_optzoo.layout) or None. Received: layouts="
            f"{layouts!r}")
    out = {}
    for pattern, kind in layouts.items():
        try:
            re.compile(pattern)
        except (re.error, TypeError) as error:
            raise ValueError(
                "Argument `layouts` must map regular expressions to "
                f"layouts. Received the key {pattern!r} ({error})") from None
        out[pattern] = check(kind)
    return out


def _segments(variable):
    path = getattr(variable, "path", None) or getattr(variable, "name", "")
    return str(path).split("/")


def infer(variable):
    """The layout string of a variable from its path and shape (see the
    module docstring)."""
    parts = _segments(variable)
    leaf = parts[-1].split(":")[0]
    layer = parts[-2] if len(parts) > 1 else ""
    rank = len(variable.shape)
    if leaf == "embeddings":
        return "identity"
    if leaf == "depthwise_kernel":
        return "depthwise"
    if leaf == "pointwise_kernel":
        return "conv"
    if leaf != "kernel" or rank < 2:
        return "identity"
    base = re.sub(r"_\d+$", "", layer)
    if base in _ATTENTION and rank == 3:
        return _ATTENTION[base]
    if rank == 2:
        return "dense"
    if re.fullmatch(r"conv\dd_transpose", base):
        return "conv_transpose"
    if re.fullmatch(r"depthwise_conv\dd", base):
        return "depthwise"
    if base == "einsum_dense":
        return "identity"  # its equation is needed: from_model()
    if rank <= 5:
        return "conv"
    return "identity"


def resolve(variable, overrides=None):
    """The :class:`Layout` of ``variable``: the first ``overrides`` regex
    that matches its path, else :func:`infer`."""
    path = "/".join(_segments(variable))
    kind = None
    for pattern, value in (overrides or {}).items():
        if re.search(pattern, path):
            kind = value
            break
    if kind is None:
        kind = infer(variable)
    return Layout(kind, variable.shape)


def _einsum_layout(layer):
    """``"linear:IN|OUT"`` for an EinsumDense from its equation."""
    equation = getattr(layer, "equation", None)
    if not equation or "->" not in equation:
        return None
    inputs, output = equation.replace(" ", "").split("->")
    x_spec, k_spec = inputs.split(",")
    ins = [i for i, c in enumerate(k_spec) if c in x_spec and c not in output]
    outs = [i for i, c in enumerate(k_spec) if c in output]
    if not ins or not outs or len(ins) + len(outs) != len(k_spec):
        return None
    return "linear:" + ",".join(map(str, ins)) + "|" + \
        ",".join(map(str, outs))


def from_model(model):
    """``{regex: layout}`` for every kernel of a built model, decided from
    the layer classes (exact where the path alone cannot tell: renamed
    transposed/depthwise convolutions, EinsumDense of any equation). Pass
    it as an optimizer's ``layouts=`` argument."""
    import keras

    layers = keras.layers
    out = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        kind = None
        name = type(layer).__name__
        for variable in layer._trainable_variables:
            leaf = variable.path.split("/")[-1]
            if isinstance(layer, layers.EinsumDense) and leaf == "kernel":
                kind = _einsum_layout(layer) or "identity"
            elif leaf == "depthwise_kernel" or (
                    "Depthwise" in name and leaf == "kernel"):
                kind = "depthwise"
            elif "Transpose" in name and leaf == "kernel":
                kind = "conv_transpose"
            elif leaf in ("kernel", "pointwise_kernel") and (
                    "Conv" in name):
                kind = "conv"
            elif isinstance(layer, layers.Dense) and leaf == "kernel":
                kind = "dense"
            else:
                continue
            out["^" + re.escape(variable.path) + "$"] = kind
    return out
