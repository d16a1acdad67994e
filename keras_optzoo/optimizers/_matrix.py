"""Matrix helpers shared by the matrix optimizers (keras.ops, plus one
torch kernel choice).

Newton-Schulz with a coefficient schedule (Muon, NorMuon, AdaMuon), and the
named coefficient schedules of timm 1.0.31 (``timm/optim/muon.py``), which
pytorch-optimizer 4.1.0 names the same. Its bfloat16 mode runs on native
bfloat16 matrix products on the torch backend where the hardware has them
(:func:`native_bfloat16`), and emulates them with float32 products
elsewhere: the same rounding points either way.

SOAP's eigenbases: :func:`merged_shape` (merging small adjacent axes),
:func:`mode_gram` (the per-axis statistic ``G_(i) G_(i)^T``),
:func:`eigenbasis` (eigenvectors by descending eigenvalue, signs fixed),
:func:`qr_refresh` (one power-iteration step with QR, eigenvalue sorting)
and :func:`project` (applying one matrix per axis).
"""

import functools
import numbers

import keras
from keras import ops

from keras_optzoo import _minmax

#: torch.optim.Muon's triple (Keller Jordan's Muon)
ORIGINAL_NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)

#: timm 1.0.31's named schedules (one (a, b, c) per Newton-Schulz step; the
#: last one repeats when more steps run than the schedule has)
NS_COEFFICIENTS = {
    # Keller Jordan's Muon
    "original": (ORIGINAL_NS_COEFFICIENTS,),
    # modded-nanogpt's train_gpt_medium.py (per-step quintics)
    "quintic": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
    # Polar Express (Amsel et al., 2025, arXiv:2505.16932), safety 1e-2
    "polar_express": (
        (8.237312490495555, -23.157747414558198, 16.680568411445915),
        (4.082441999064835, -2.893047735332586, 0.5252849256975648),
        (3.9263479922546582, -2.8547468034765298, 0.5318022422894988),
        (3.2982187133085143, -2.424541981026706, 0.48632008358844075),
        (2.2970369434552573, -1.63662558125903, 0.4002628455953627),
        (1.8763805351440397, -1.2347896577722228, 0.35891887501668385),
        (1.8564423485617974, -1.2132449880935525, 0.3568003487825883),
        (1.8749994008682747, -1.2499988017229169, 0.3749994008546422),
    ),
    # Polar Express as in modded-nanogpt's train_gpt.py, safety 2e-2
    "polar_express_safer": (
        (8.156554524902461, -22.48329292557795, 15.878769915207462),
        (4.0429299351667245, -2.808917465908704, 0.5000178451051299),
        (3.8916678022926563, -2.7724841532176825, 0.5060648178503389),
        (3.285753657755658, -2.3681294933425394, 0.46449024233003117),
        (2.3005307116270983, -1.6111665557258408, 0.3833374427545273),
        (1.8631210546382593, -1.2042160621002727, 0.3421879560523383),
        (1.8382572152247512, -1.1779263289537742, 0.3396513038637379),
        (1.8749999923301852, -1.2499999836060613, 0.374999991275876),
    ),
}

_NS_DTYPES = ("bfloat16", "float32")


def _is_real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_triple(x):
    return (isinstance(x, (list, tuple)) and len(x) == 3
            and all(_is_real(v) for v in x))


def check_ns_coefficients(value, name="ns_coefficients"):
    """Validates a coefficient argument; returns its canonical stored form.

    A name of :data:`NS_COEFFICIENTS` stays the name (so ``get_config``
    saves the name); one triple ``(a, b, c)`` becomes a tuple of 3 floats;
    a non-empty list of triples a tuple of tuples.
    """
    message = (f"Argument `{name}` must be a name of "
               f"{sorted(NS_COEFFICIENTS)}, a tuple of 3 real numbers or a "
               f"non-empty list of such tuples. Received: {name}={value!r}")
    if isinstance(value, str):
        if value not in NS_COEFFICIENTS:
            raise ValueError(message)
        return value
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(message)
    if _is_triple(value):
        return tuple(float(v) for v in value)
    if not all(_is_triple(item) for item in value):
        raise ValueError(message)
    return tuple(tuple(float(v) for v in item) for item in value)


def ns_coefficient_schedule(coefficients, steps):
    """The ``steps`` triples Newton-Schulz runs, as timm 1.0.31 resolves
    them: a name or one triple is a list, truncated to its first ``steps``
    triples when longer, its last triple repeated when shorter."""
    if isinstance(coefficients, str):
        table = NS_COEFFICIENTS[coefficients]
    elif _is_triple(coefficients):
        table = (tuple(coefficients),)
    else:
        table = tuple(tuple(c) for c in coefficients)
    table = [tuple(float(v) for v in c) for c in table]
    if steps <= len(table):
        return table[:steps]
    return table + [table[-1]] * (steps - len(table))


def config_form(coefficients):
    """``check_ns_coefficients``'s value as it goes into a config (JSON has
    no tuples: from_config gets lists back; the check restores them)."""
    if isinstance(coefficients, str):
        return coefficients
    if _is_triple(coefficients):
        return tuple(coefficients)
    return [tuple(c) for c in coefficients]


def check_ns_dtype(ns_dtype):
    if ns_dtype not in _NS_DTYPES:
        raise ValueError(
            "Argument `ns_dtype` must be 'bfloat16' or 'float32'. "
            f"Received: ns_dtype={ns_dtype!r}")
    return ns_dtype


def _matmul(x, y):
    """``ops.matmul``, in float64 for float64 operands: on the torch backend
    ``ops.matmul`` computes float64 products in float32 (Keras's type
    promotion maps 64-bit to 32-bit types); the ``@`` operator of each
    backend's tensors keeps the dtype."""
    if keras.backend.standardize_dtype(x.dtype) == "float64":
        return x @ y
    return ops.matmul(x, y)


def scaled_norm(x, axis=None):
    """Frobenius norm of ``x`` without underflow or overflow, as
    ``torch.linalg.vector_norm`` computes it: ``x`` is divided by the power
    of two at or below ``max |x|`` before squaring (an exact scaling, so in
    the normal range the result rounds as ``sqrt(sum(x**2))`` does). With
    float32 entries below ~1e-19 the plain sum of squares is 0.

    ``axis``: the norm over those axes only, keepdims-shaped (``(-2, -1)``:
    one norm per matrix of a stack)."""
    keepdims = axis is not None
    peak = ops.max(ops.abs(x), axis=axis, keepdims=keepdims)
    safe = ops.where(peak > 0, peak, ops.ones_like(peak))
    scale = ops.power(ops.cast(2.0, x.dtype), ops.floor(ops.log2(safe)))
    scaled = x / scale
    return ops.sqrt(ops.sum(scaled * scaled, axis=axis,
                            keepdims=keepdims)) * scale


def _mT(x):
    return ops.swapaxes(x, -1, -2)


#: smallest matrix side for native bfloat16 products on a CPU: below it
#: oneDNN's bfloat16 GEMM is slower than float32's (10 matrices of 25x40:
#: 0.053 ms against 0.027 ms; of 100x100: 0.28 against 0.49; of 250x400:
#: 3.9 against >9; one thread, AVX512-BF16)
NATIVE_BF16_MIN_SIDE = 64

@functools.cache
def _cpu_has_bfloat16():
    """Whether the CPU multiplies bfloat16 matrices in hardware
    (AVX512-BF16 or AMX; Linux's /proc/cpuinfo flags, read once). Without
    it oneDNN converts bfloat16 on the fly, ~10x slower than float32."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def native_bfloat16(x):
    """Whether :func:`newton_schulz`'s bfloat16 mode multiplies ``x``'s
    matrices in bfloat16 (torch backend: a CUDA device with bfloat16, or a
    CPU with bfloat16 instructions and both matrix sides at least
    :data:`NATIVE_BF16_MIN_SIDE`). Decided from the device and the shape,
    never from a timing: one matrix takes one path on a given machine."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    if not isinstance(x, torch.Tensor):
        return False
    if x.device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return x.device.type == "cpu" and _cpu_has_bfloat16() and \
        min(int(x.shape[-2]), int(x.shape[-1])) >= NATIVE_BF16_MIN_SIDE


def _newton_schulz_torch_bf16(x, schedule, epsilon, safety_factor):
    """:func:`newton_schulz` in bfloat16 with torch's own kernels, the
    operations of ``torch.optim.Muon``'s iteration (bfloat16 tensors,
    ``addmm``), batched: a 2-D matrix is a batch of one, so a matrix gives
    the same bits alone (the per-variable path) and stacked with others of
    its shape (the multi-tensor path)."""
    import torch

    single = x.ndim == 2
    x = x.to(torch.bfloat16)
    if single:
        x = x.unsqueeze(0)
    transposed = x.shape[-2] > x.shape[-1]
    if transposed:
        x = x.mT
    norm = torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True)
    if safety_factor != 1.0:
        norm = norm * safety_factor
    x = x / norm.clamp(min=epsilon)
    for a, b, c in schedule:
        gram = torch.bmm(x, x.mT)
        gram_update = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.baddbmm(x, gram_update, x, beta=a)
    if transposed:
        x = x.mT
    if single:
        x = x[0]
    return x.to(torch.float32)


def newton_schulz(x, schedule, epsilon, ns_dtype="float32",
                  safety_factor=1.0):
    """Quintic Newton-Schulz with one ``(a, b, c)`` per step (``schedule``,
    see :func:`ns_coefficient_schedule`), on a matrix or a batch of
    matrices (the last two axes).

    $X \\leftarrow G / \\max(s\\|G\\|_F, \\epsilon)$ (per matrix; transposed
    while it has more rows than columns), then per step
    $A = XX^\\top$, $X \\leftarrow aX + (bA + cA^2)X$.

    ``ns_dtype="bfloat16"`` runs it as torch does in bfloat16 on CPU:
    every tensor torch materialises (the normalised input, each Gram
    matrix, each ``addmm`` result) is rounded to bfloat16 and each product
    is accumulated in float32 from those bfloat16 values. ``"float32"``
    runs in float32 (float64 for float64 inputs). Returns the compute dtype
    (float32 holding bfloat16 values for ``"bfloat16"``). Where
    :func:`native_bfloat16` holds, the bfloat16 mode runs torch's bfloat16
    kernels instead of the emulation: the same rounding points, the
    accumulation order of the hardware's bfloat16 GEMM.
    """
    dtype = keras.backend.standardize_dtype(x.dtype)
    if ns_dtype == "bfloat16" and native_bfloat16(x):
        return _newton_schulz_torch_bf16(x, schedule, epsilon, safety_factor)
    if ns_dtype == "bfloat16":
        compute = "float32"

        def rnd(v):
            return ops.cast(ops.cast(v, "bfloat16"), "float32")
    else:
        compute = "float64" if dtype == "float64" else "float32"

        def rnd(v):
            return v
    x = rnd(ops.cast(x, compute))
    transposed = int(x.shape[-2]) > int(x.shape[-1])
    if transposed:
        x = _mT(x)
    norm = rnd(ops.sqrt(ops.sum(x * x, axis=(-2, -1), keepdims=True)))
    if safety_factor != 1.0:
        norm = rnd(norm * safety_factor)
    # convert_to_tensor, not ops.cast: on TF a cast of a Python float
    # rounds it through float32
    eps = rnd(ops.convert_to_tensor(epsilon, dtype=compute))
    x = rnd(x / _minmax.clamp(norm, eps))
    for a, b, c in schedule:
        gram = rnd(_matmul(x, _mT(x)))
        gram_update = rnd(b * gram + c * _matmul(gram, gram))
        x = rnd(a * x + _matmul(gram_update, x))
    if transposed:
        x = _mT(x)
    return x


def merged_shape(shape, max_dim):
    """Adjacent axes merged while their product stays <= ``max_dim``.

    The rule of pytorch-optimizer's ``merge_small_dims``: a running product
    is closed off when the next axis would take it above ``max_dim``.
    ``(2, 3, 2)`` with ``max_dim=6`` gives ``(6, 2)``; ``(1024, 3, 3)`` with
    1024 gives ``(1024, 9)``. pytorch-optimizer turns a shape that merges
    into one axis into ``(1,)`` (so its reshape fails for more than one
    element); here such a shape merges into its one axis ``(numel,)``.
    """
    merged = []
    product = 1
    for dim in shape:
        product *= int(dim)
        if product > max_dim:
            merged.append(product // int(dim))
            product = int(dim)
    merged.append(product)
    return tuple(merged)


def mode_gram(x, axis):
    """``sum over the other axes of x[..i..] x[..j..]``: the ``(d, d)``
    Gram matrix of the mode-``axis`` unfolding of ``x``."""
    d = x.shape[axis]
    unfolded = ops.reshape(ops.moveaxis(x, axis, 0), (d, -1))
    return ops.matmul(unfolded, ops.transpose(unfolded))


def _compute_dtype(dtype):
    name = keras.backend.standardize_dtype(dtype)
    return name if name in ("float32", "float64") else "float32"


def fix_signs(q):
    """Each column multiplied by the sign of its entry of largest
    magnitude (the first such entry), so that a basis does not depend on
    the sign convention of a backend's eigensolver or QR."""
    index = ops.argmax(ops.abs(q), axis=0)
    pivot = ops.take_along_axis(q, ops.expand_dims(index, 0), axis=0)
    # -q where the pivot is negative (no Python-float where: with x64 on
    # JAX it would build float64 constants)
    return ops.where(pivot < 0, -q, q)


def eigenbasis(gram, epsilon=1e-30):
    """Eigenvectors of the symmetric ``gram + epsilon*I``, as columns
    ordered by descending eigenvalue, each column's sign fixed by
    :func:`fix_signs`. Computed in ``gram``'s dtype (float32 for half
    types) and returned in it."""
    dtype = gram.dtype
    work = ops.cast(gram, _compute_dtype(dtype))
    d = work.shape[0]
    work = work + ops.cast(epsilon, work.dtype) * ops.eye(d, dtype=work.dtype)
    _, vectors = ops.eigh(work)  # ascending
    vectors = ops.flip(vectors, axis=1)
    return ops.cast(fix_signs(vectors), dtype)


def qr_refresh(gram, basis):
    """One step of power iteration towards the eigenbasis of ``gram``.

    Returns ``(order, new_basis)``: ``order`` sorts the current basis's
    estimated eigenvalues ``diag(basis^T gram basis)`` in descending order
    (the caller reorders its second moments along this axis with it), and
    ``new_basis`` is the Q factor of ``(gram @ basis)[:, order]``, computed
    in float32 (as pytorch-optimizer does for every dtype), signs fixed by
    :func:`fix_signs`, in ``basis``'s dtype.
    """
    product = ops.matmul(gram, basis)
    estimate = ops.sum(basis * product, axis=0)
    order = ops.argsort(-estimate)
    power = ops.take(product, order, axis=1)
    q, _ = ops.qr(ops.cast(power, "float32"))
    return order, ops.cast(fix_signs(q), basis.dtype)


def project(x, bases, transpose=True):
    """``x`` with each axis ``i`` multiplied by ``bases[i]^T``
    (``transpose=True``, into the eigenbases) or by ``bases[i]``
    (back); a ``None`` basis leaves its axis as it is."""
    for basis in bases:
        if basis is None:
            x = ops.moveaxis(x, 0, -1)
        else:
            x = ops.tensordot(x, basis, axes=([0], [0 if transpose else 1]))
    return x


def _is_traced(x):
    """Whether ``x`` is a value being traced (JAX under ``jit``, a TF
    graph tensor) rather than a concrete eager value."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly() or not hasattr(x, "numpy")
    return False


def branch(pred, true_fn, false_fn):
    """``ops.cond(pred, true_fn, false_fn)`` where ``pred`` is traced (one
    compiled step, both branches traced once, only one run per step); a
    Python ``if`` on a concrete ``pred`` (eager steps: JAX's eager
    ``lax.cond`` re-traces both branches on every call)."""
    if _is_traced(pred):
        return ops.cond(pred, true_fn, false_fn)
    return true_fn() if bool(ops.convert_to_numpy(pred)) else false_fn()
