"""Sharded optimizer state (ZeRO stage 1) through ``keras.distribution``.

``shard_state=True`` on a :class:`~keras_optzoo.optimizers.base.ZooOptimizer`
creates every slot (the per-variable state of ``SlotSpec``) with a layout of
its own: the weights keep the layout the active distribution gives them,
and each slot is split along the distribution's data-parallel mesh axis
(``DataParallel``'s only axis, ``ModelParallel``'s ``batch_dim_name``).
The axis of the slot that is split is the first one whose size is a
multiple of the number of devices on that mesh axis and that the
reference layout (a slot shaped like its variable starts from the
variable's layout) does not shard already; a slot with no such axis (a
scalar, a vector of 3) is replicated. Keras's JAX trainer compiles the
train step with the optimizer variables' shardings as output shardings,
so XLA runs the update on each device's shard of the state and gathers
the new weights into their own layout.

Only the JAX backend implements ``keras.distribution`` layouts in Keras
3.15: see :func:`unsupported_backend_message` for TensorFlow and torch.
"""

import warnings

import keras

#: What the error on TensorFlow and torch says to use instead.
_INSTEAD = {
    "tensorflow": (
        "tf.distribute (MirroredStrategy, which Keras optimizers support) "
        "keeps a full copy of the optimizer state on every replica and has "
        "no ZeRO-style state sharding; to shard the state, run the model on "
        "the JAX backend with a keras.distribution (DataParallel or "
        "ModelParallel) and shard_state=True"),
    "torch": (
        "torch.distributed.optim.ZeroRedundancyOptimizer and FSDP shard the "
        "state of torch.optim optimizers, which they own and step "
        "themselves; they cannot shard the state of a Keras optimizer "
        "running in the torch backend (its state is Keras variables updated "
        "inside Keras's train step). Use a torch.optim optimizer under "
        "ZeroRedundancyOptimizer/FSDP in a torch training loop, or the JAX "
        "backend with a keras.distribution and shard_state=True"),
}


def unsupported_backend_message(backend):
    return (
        "Argument `shard_state=True` needs the JAX backend: it lays the "
        "optimizer state out through keras.distribution, which Keras "
        f"implements for JAX only. On the {backend} backend "
        f"{_INSTEAD.get(backend, 'use the JAX backend')}. "
        f"Received: shard_state=True (backend: {backend})")


def active():
    """The distribution the slots are laid out on, or None (with a
    warning) when there is none."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        warnings.warn(
            "`shard_state=True` but no keras.distribution is active while "
            "the optimizer builds its state: the state is created "
            "unsharded, on one device. Set a distribution "
            "(keras.distribution.set_distribution(keras.distribution."
            "DataParallel()) or ModelParallel) before the model and its "
            "optimizer are built.", stacklevel=4)
        return None
    if distribution.batch_dim_name is None:
        warnings.warn(
            f"`shard_state=True` but the active distribution "
            f"({type(distribution).__name__}) names no data-parallel "
            "(batch) mesh axis: the state takes the distribution's layout.",
            stacklevel=4)
        return None
    return distribution


def _reference_axes(layout, rank):
    """The mesh axes of a layout (TensorLayout, a JAX NamedSharding or
    None) as a tuple of length ``rank``."""
    if layout is None:
        return (None,) * rank
    axes = getattr(layout, "axes", None)
    if axes is None:
        spec = getattr(layout, "spec", None)
        if spec is None:
            return None  # a layout we cannot read: keep it as it is
        axes = tuple(spec)
    axes = tuple(axes) + (None,) * (rank - len(axes))
    return axes[:rank] if len(axes) > rank else axes


def _names(entry):
    if entry is None:
        return ()
    if isinstance(entry, (tuple, list)):
        return tuple(entry)
    return (entry,)


def state_layout(distribution, shape, reference):
    """The layout of a slot of ``shape`` under ``distribution``.

    ``reference``: the layout Keras would give it (its variable's for a
    slot shaped like the variable, else None). The first axis that the
    reference leaves unsharded and whose size is a positive multiple of the
    number of devices on the data-parallel mesh axis is sharded on that mesh
    axis; with none, the reference (replicated where None).
    """
    from keras.distribution import TensorLayout

    mesh = distribution.device_mesh
    batch = distribution.batch_dim_name
    count = mesh.shape[list(mesh.axis_names).index(batch)]
    shape = tuple(int(d) for d in shape)
    axes = _reference_axes(reference, len(shape))
    if axes is None:
        return reference
    if any(batch in _names(a) for a in axes):
        return reference  # already split on the data-parallel axis
    for i, size in enumerate(shape):
        if axes[i] is None and size > 0 and size % count == 0:
            axes = axes[:i] + (batch,) + axes[i + 1:]
            return TensorLayout(axes, device_mesh=mesh)
    if reference is None:
        return TensorLayout(axes, device_mesh=mesh)  # replicated
    return reference


def per_device_bytes(variables):
    """(bytes of one device's shards, bytes of the full arrays) summed over
    ``variables`` (JAX arrays' shardings; device 0 of each array)."""
    import numpy as np

    local = full = 0
    for variable in variables:
        value = variable.value
        itemsize = np.dtype(value.dtype).itemsize
        full += int(np.prod(value.shape)) * itemsize
        shard = value.sharding.shard_shape(value.shape)
        local += int(np.prod(shard)) * itemsize
    return local, full
