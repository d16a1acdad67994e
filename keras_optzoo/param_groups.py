"""Parameter groups: per-group hyperparameters on every keras-optzoo optimizer.

    oz.AdamW(learning_rate=schedule, weight_decay=0.05, param_groups=[
        {"params": r"bias|norm", "weight_decay": 0.0},
        {"params": r"head/", "learning_rate": 1e-3, "beta_1": 0.8},
    ])

A group is a dict with ``"params"`` (a regular expression searched with
``re.search`` in ``variable.path``, a callable ``variable -> bool``, or a list
of variables or of variable paths) and overrides of the optimizer's own
constructor arguments (``learning_rate``, ``weight_decay``, ``beta_1``, ...),
plus ``"lr_scale"`` (timm's key: a factor on the group's rate, see
:func:`layer_decay`). Variables no group matches form the default group, with
the constructor's arguments.

How it works (the mechanism every optimizer gets without changes to its
``_update``):

* ``build`` resolves the groups (:func:`resolve`): each variable gets a group
  id (``optimizer._group_of[index]``, 0 for the default group). For each user
  group a throwaway instance of the optimizer is constructed with the
  constructor's arguments and the group's overrides: this validates the
  values with the optimizer's own checks (so the errors are the usual ones,
  prefixed with the group) and yields every attribute the constructor derives
  from them. The attributes that differ from the optimizer's are the group's
  *overlay*.
* While one variable (or, on the torch multi-tensor path, one group of
  variables of the same param group) is being updated, :func:`scope` puts
  the overlay on the optimizer (``self.beta_1`` reads the group's value) and
  restores the attributes afterwards. ``build`` does the same around the
  weight-decay mask and the slot creation, so a group with ``amsgrad=True``
  gets its own ``max_exp_avg_sq`` slots. Updates run one variable after the
  other in one thread on every backend (``tf.distribute`` runs the optimizer
  update in the cross-replica context, one variable after another), so the
  swap is never seen by another variable's update.
* Learning rate of a group (``group_learning_rate``): a group without
  ``learning_rate`` uses the optimizer's rate. A group with a number ``b``
  gets ``b / b0`` times the optimizer's current rate, where ``b0`` is the
  optimizer's base rate: the float ``learning_rate`` the optimizer was
  constructed with, or its schedule's base rate
  (:func:`base_learning_rate`: the
  ``base_learning_rate`` attribute every keras-optzoo schedule has, e.g.
  SequentialLR's first child's; ``initial_learning_rate`` of Keras's decay
  schedules; the first of ``PiecewiseConstantDecay``'s ``values``). A
  schedule without one (or a callable rate) raises at ``build``, naming the
  group. So a schedule (and an assignment to a float
  ``optimizer.learning_rate``) scales every group by the same factor
  ``schedule(step) / b0``, as torch's schedulers scale each group's
  ``initial_lr``, and ``learning_rate_scale`` (ReduceLROnPlateau) applies to
  all. A group with its own schedule uses that schedule times
  ``learning_rate_scale``. ``lr_scale`` multiplies the result.
  ``optimizer.group_learning_rates()`` (:func:`learning_rates`) reads every
  group's current rate.
"""

import fnmatch
import functools
import inspect
import numbers
import re

import keras

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule

#: Arguments global to the optimizer, not per group: Keras's base-class
#: ones (clipping is over all groups; EMA, accumulation, loss scaling) and
#: the gradient transforms, which run on all gradients before the update.
_BASE_ARGUMENTS = frozenset({
    "name", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
    "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
    "gradient_accumulation_steps", "param_groups",
    "param_groups_lr_reference", "kwargs", "self", "agc_clip_factor",
    "agc_eps", "gradient_centralization", "gc_conv_only", "shard_state",
})

#: Extra group keys beyond the optimizer's arguments.
_EXTRA_KEYS = frozenset({"params", "lr_scale"})

#: Attributes a group never swaps (Keras's and the groups' own state).
_NOT_OVERLAID = frozenset({
    "built", "name", "_name", "_learning_rate", "_param_groups",
    "_param_groups_lr_reference", "_groups", "_group_of", "_in_param_group",
    "_unbuilt_variable_count", "use_multi_tensor",
})

_PLAIN = (bool, int, float, str, type(None), tuple, LearningRateSchedule)


# ------------------------------------------------------------- the groups
class _Resolved:
    """One user group after ``build``."""

    __slots__ = ("overlay", "lr_mode", "lr_factor", "schedule", "spec")

    def __init__(self, spec):
        self.spec = spec
        self.overlay = {}
        self.lr_mode = "default"  # or "ratio", "schedule"
        self.lr_factor = 1.0
        self.schedule = None


def check_groups(groups):
    """Normalises the constructor's ``param_groups`` (a list of dicts)."""
    if groups is None:
        return []
    if isinstance(groups, dict) or not isinstance(groups, (list, tuple)):
        raise ValueError(
            "Argument `param_groups` must be a list of dicts, each with a "
            f"'params' key. Received: param_groups={groups!r}")
    out = []
    for i, group in enumerate(groups):
        if not isinstance(group, dict):
            raise ValueError(
                f"param_groups[{i}] must be a dict with a 'params' key. "
                f"Received: {group!r}")
        group = dict(group)
        for key, value in list(group.items()):
            if isinstance(value, dict) and "class_name" in value \
                    and key != "params":
                group[key] = keras.saving.deserialize_keras_object(value)
        params = group.get("params")
        if isinstance(params, dict) and "class_name" in params:
            group["params"] = keras.saving.deserialize_keras_object(params)
        params = group.get("params")
        if callable(params) and not _serializable(params):
            raise ValueError(_unserializable_message(i, group, params))
        out.append(group)
    return out


def _serializable(selector):
    """Whether Keras can save and reload a callable selector: a function
    registered with ``keras.saving.register_keras_serializable``, or an
    instance of a registered class with ``get_config``."""
    def registered(obj):
        try:
            name = keras.saving.get_registered_name(obj)
        except (AttributeError, TypeError):  # no __name__, unhashable
            return False
        return keras.saving.get_registered_object(name) is obj

    if registered(selector):
        return True
    if inspect.isfunction(selector) or inspect.ismethod(selector) \
            or inspect.isbuiltin(selector) or inspect.isclass(selector):
        return False
    return registered(type(selector)) \
        and callable(getattr(selector, "get_config", None))


def _unserializable_message(i, group, params):
    return (
        f"{_describe(i, group)}: its 'params' selector "
        f"{_selector_text(params)!r} is a callable that Keras cannot "
        "serialize (a lambda, a local or unregistered function), so a "
        "model compiled with this optimizer could not be saved: "
        "`model.save` and `ModelCheckpoint` would fail (and Keras would "
        "leave the target file empty). Decorate a module-level function "
        "with `@keras.saving.register_keras_serializable()`, or use a "
        "regular expression (searched in `variable.path`) or a list of "
        "variables instead.")


def _own_arguments(opt):
    """The explicit arguments of the optimizer class's ``__init__``."""
    for cls in type(opt).__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            return {p.name for p in inspect.signature(init).parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return set()


#: Passed on through ``**kwargs`` by every keras-optzoo optimizer.
_FORWARDED = ("clipnorm", "clipvalue", "global_clipnorm", "use_ema",
              "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
              "gradient_accumulation_steps", "agc_clip_factor", "agc_eps",
              "gradient_centralization", "gc_conv_only", "shard_state")


def allowed_keys(opt):
    """The optimizer's own constructor arguments (and ``lr_scale``)."""
    names = (set(opt._hyperparameters) | {"learning_rate"}
             | _own_arguments(opt))
    return (names - _BASE_ARGUMENTS) | _EXTRA_KEYS


def _same_path(path, saved):
    """A saved path names ``path``: equal, or one ends with the other after
    a "/" (Keras names a variable "sequential/dense/bias" in the model that
    was built and "dense/bias" in the same model loaded from a file)."""
    return path == saved or saved.endswith("/" + path) \
        or path.endswith("/" + saved)


def _describe(i, group):
    shown = {k: (_selector_text(v) if k == "params" else v)
             for k, v in group.items()}
    return f"param_groups[{i}] {shown}"


def _selector_text(params):
    if isinstance(params, str):
        return params
    if callable(params):
        return getattr(params, "__name__", repr(params))
    try:
        return [_variable_key(v) for v in params]
    except TypeError:
        return repr(params)


def _variable_key(v):
    return v if isinstance(v, str) else getattr(v, "path", repr(v))


def _matcher(i, group):
    params = group["params"]
    if isinstance(params, str):
        try:
            pattern = re.compile(params)
        except re.error as error:
            raise ValueError(
                f"{_describe(i, group)}: 'params' is not a valid regular "
                f"expression ({error}). Received: params={params!r}") from None
        return lambda v: pattern.search(v.path) is not None
    if callable(params):
        return lambda v: bool(params(v))
    if isinstance(params, (list, tuple)):
        ids = {id(p) for p in params if not isinstance(p, str)}
        paths = [p for p in params if isinstance(p, str)]
        return lambda v: id(v) in ids or any(_same_path(v.path, p)
                                             for p in paths)
    raise ValueError(
        f"{_describe(i, group)}: 'params' must be a regular expression "
        "(searched in `variable.path`), a callable `variable -> bool` or a "
        f"list of variables. Received: params={params!r}")


def _identity_hint(params, var_list):
    """Why a list of variables matched nothing when its paths are there: a
    list matches the very variable objects (another model instance, a
    clone, a model rebuilt since, has other variables with the same
    paths)."""
    if not isinstance(params, (list, tuple)):
        return ""

    def tail(path):  # without the model's name ("sequential_3/")
        return path.split("/", 1)[-1]

    paths = {tail(v.path) for v in var_list}
    same = [p.path for p in params if not isinstance(p, str)
            and tail(getattr(p, "path", "")) in paths]
    if not same:
        return ""
    return (
        " A list of variables matches by identity (the variable objects "
        "of the model being trained), not by path: the list holds "
        f"variables {same} of another object with the same layers "
        "(another instance of the model, a clone, or a model built "
        "again). Build the list from the model you train, or give the "
        "paths as strings or a regular expression.")


def _constructor_config(opt):
    """The optimizer's constructor arguments as values (schedules and
    functions as they are: nothing is serialised), without the groups."""
    names = (_own_arguments(opt) | set(_FORWARDED)) - {
        "self", "kwargs", "name", "learning_rate", "param_groups",
        "param_groups_lr_reference"}
    config = {}
    for name in names:
        try:
            config[name] = getattr(opt, name)
        except AttributeError:
            continue
    lr = opt._learning_rate
    if isinstance(lr, keras.Variable):
        # The float the optimizer was constructed with (the throwaway only
        # validates the group's values; its rate is never used): `build`
        # may run inside a traced train step (TF's tf.function), where the
        # variable cannot be read as a number.
        reference = opt._param_groups_lr_reference
        lr = reference if isinstance(reference, (int, float)) \
            else _eager_float(lr)
    config["learning_rate"] = lr
    config["name"] = opt.name
    return config


def _eager_float(variable):
    """A variable's value as a Python float, also while a TF graph is being
    traced (the variable lives outside it)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.init_scope():
            return float(keras.ops.convert_to_numpy(variable.value))
    return float(keras.ops.convert_to_numpy(variable))


def _base_rate(opt):
    """``b0``: the rate a group's ``learning_rate`` is relative to: the
    optimizer's float rate, or its schedule's base rate
    (:func:`base_learning_rate`); None for a callable or a schedule without
    one."""
    lr = opt._learning_rate
    if isinstance(lr, keras.Variable):
        return opt._param_groups_lr_reference
    if isinstance(lr, LearningRateSchedule):
        return base_learning_rate(lr)
    return None


def base_learning_rate(schedule):
    """The base learning rate of ``schedule``, or None where it has none.

    The base rate is the number torch reads from the optimizer (``lr``,
    each group's ``initial_lr``) and a scheduler multiplies by its factor:
    ``schedule(step) / base_learning_rate(schedule)`` is the factor, and a
    param group with a number ``learning_rate`` ``b`` gets ``b`` times it.
    It is the schedule's ``base_learning_rate`` attribute (every
    keras-optzoo schedule has one; a schedule of your own may define it);
    else, for Keras's own schedules, their ``initial_learning_rate``
    (``ExponentialDecay``, ``PolynomialDecay``, ``InverseTimeDecay``,
    ``CosineDecay``, ``CosineDecayRestarts``) or, for
    ``PiecewiseConstantDecay``, the first of its ``values``. Any other
    schedule has none.
    """
    value = getattr(schedule, "base_learning_rate", None)
    if value is None and isinstance(
        schedule, keras.optimizers.schedules.PiecewiseConstantDecay
    ):
        values = getattr(schedule, "values", None)
        value = values[0] if values else None
    if value is None:
        value = getattr(schedule, "initial_learning_rate", None)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def resolve(opt, var_list):
    """Assigns every variable a group (``opt._group_of``) and computes the
    groups' overlays (``opt._groups``; index 0, the default group, is
    None). Raises a ValueError naming the group on a bad group."""
    specs = opt._param_groups
    opt._group_of = [0] * len(var_list)
    opt._groups = [None]
    if not specs:
        return
    allowed = allowed_keys(opt)
    owner = [None] * len(var_list)
    for i, group in enumerate(specs):
        if "params" not in group:
            raise ValueError(
                f"{_describe(i, group)} has no 'params' key (a regular "
                "expression, a callable or a list of variables).")
        unknown = sorted(set(group) - allowed)
        if unknown:
            raise ValueError(
                f"{_describe(i, group)}: unknown key(s) {unknown}. A group "
                f"takes 'params', 'lr_scale' and {type(opt).__name__}'s own "
                f"arguments: {sorted(allowed - _EXTRA_KEYS)}.")
        match = _matcher(i, group)
        hits = 0
        for index, variable in enumerate(var_list):
            if not match(variable):
                continue
            hits += 1
            if owner[index] is not None:
                raise ValueError(
                    f"Variable '{variable.path}' is matched by two param "
                    f"groups: {_describe(owner[index], specs[owner[index]])}"
                    f" and {_describe(i, group)}. Each variable may belong "
                    "to one group only.")
            owner[index] = i
        if not hits:
            raise ValueError(
                f"{_describe(i, group)} matches no variable."
                f"{_identity_hint(group['params'], var_list)} Variable "
                f"paths: {[v.path for v in var_list]}")
    config = _constructor_config(opt)
    for i, group in enumerate(specs):
        opt._groups.append(_resolve_one(opt, i, group, config))
    opt._group_of = [0 if o is None else o + 1 for o in owner]
    if any(g.overlay.get("supports_multi_tensor") is False
           for g in opt._groups[1:]):
        opt.supports_multi_tensor = False


def _resolve_one(opt, i, group, config):
    resolved = _Resolved(group)
    overrides = {k: v for k, v in group.items() if k not in _EXTRA_KEYS}
    try:
        throwaway = type(opt)(**{**config, **overrides})
    except (ValueError, TypeError) as error:
        raise type(error)(f"{_describe(i, group)}: {error}") from None
    if "lr_scale" in group:
        value = group["lr_scale"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not value >= 0:
            raise ValueError(
                f"{_describe(i, group)}: Argument `lr_scale` must be >= 0. "
                f"Received: lr_scale={value!r}")
    ours = vars(opt)
    for key, value in vars(throwaway).items():
        if key in _NOT_OVERLAID \
                or not isinstance(value, _PLAIN):
            continue
        if key in ours and _same(ours[key], value):
            continue
        resolved.overlay[key] = value
    lr_scale = float(group.get("lr_scale", 1.0))
    if "learning_rate" in group:
        lr = throwaway._learning_rate
        if isinstance(lr, keras.Variable):
            base = _base_rate(opt)
            if not isinstance(base, (int, float)) or not base > 0:
                raise ValueError(
                    f"{_describe(i, group)}: a group's number "
                    "`learning_rate` is relative to the optimizer's base "
                    "rate (its float `learning_rate`, or its schedule's "
                    "base rate: `base_learning_rate` of a keras-optzoo "
                    "schedule, `initial_learning_rate` of a Keras decay "
                    "schedule, the first of PiecewiseConstantDecay's "
                    "`values`), which must be > 0. The optimizer's "
                    f"learning_rate {opt._learning_rate!r} has base rate "
                    f"{base!r}. Give the group its own schedule "
                    "(`\"learning_rate\": schedule`), scale the "
                    "optimizer's rate with `\"lr_scale\"`, or give the "
                    "schedule a `base_learning_rate` attribute.")
            resolved.lr_mode = "ratio"
            resolved.lr_factor = float(group["learning_rate"]) / base \
                * lr_scale
        else:
            resolved.lr_mode = "schedule"
            resolved.schedule = lr
            resolved.lr_factor = lr_scale
    elif lr_scale != 1.0:
        resolved.lr_mode = "ratio"
        resolved.lr_factor = lr_scale
    return resolved


def _same(a, b):
    if isinstance(a, (bool, int, float, str, type(None), tuple)) and \
            isinstance(b, (bool, int, float, str, type(None), tuple)):
        return type(a) is type(b) and a == b
    return a is b


# ------------------------------------------------------- during the update
class _Scope:
    __slots__ = ("opt", "overlay", "saved")

    def __init__(self, opt, overlay):
        self.opt = opt
        self.overlay = overlay
        self.saved = None

    def __enter__(self):
        attrs = vars(self.opt)
        missing = _MISSING
        self.saved = {k: attrs.get(k, missing) for k in self.overlay}
        attrs.update(self.overlay)
        return self

    def __exit__(self, *exc):
        attrs = vars(self.opt)
        for key, value in self.saved.items():
            if value is _MISSING:
                attrs.pop(key, None)
            else:
                attrs[key] = value
        return False


class _NoScope:
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_MISSING = object()
_NO_SCOPE = _NoScope()


def scope(opt, index):
    """Context in which ``opt``'s hyperparameters are those of variable
    ``index``'s group (a no-op for the default group)."""
    groups = getattr(opt, "_groups", None)
    if not groups or len(groups) == 1:
        return _NO_SCOPE
    group = groups[opt._group_of[index]]
    if group is None or not group.overlay:
        return _NO_SCOPE
    return _Scope(opt, group.overlay)


def grouped(update_step):
    """Decorates an ``update_step``: it runs with the variable's group's
    hyperparameters (:func:`scope`) and learning rate. A nested call (a
    subclass's ``update_step`` calling the base's) passes through."""

    @functools.wraps(update_step)
    def wrapper(self, gradient, variable, learning_rate):
        groups = getattr(self, "_groups", None)
        if not groups or len(groups) == 1 or \
                vars(self).get("_in_param_group"):
            return update_step(self, gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        attrs = vars(self)
        attrs["_in_param_group"] = True
        try:
            with scope(self, index):
                return update_step(
                    self, gradient, variable,
                    group_learning_rate(self, learning_rate, index))
        finally:
            attrs["_in_param_group"] = False

    return wrapper


def group_learning_rate(opt, learning_rate, index):
    """The rate variable ``index``'s update uses, from the optimizer's
    (already scaled) rate ``learning_rate``."""
    groups = getattr(opt, "_groups", None)
    if not groups or len(groups) == 1:
        return learning_rate
    return _rate_of(opt, groups[opt._group_of[index]], learning_rate)


def _rate_of(opt, group, learning_rate):
    """Group ``group``'s (a ``_Resolved``; None: the default group) rate
    from the optimizer's scaled rate ``learning_rate``."""
    if group is None or group.lr_mode == "default":
        return learning_rate
    if group.lr_mode == "ratio":
        return learning_rate * group.lr_factor
    value = opt._scaled_learning_rate(group.schedule(opt.iterations))
    if group.lr_factor != 1.0:
        value = value * group.lr_factor
    return value


def learning_rates(opt):
    """Every group's learning rate for the next update, as Python floats:
    ``{"default": rate, "param_groups[0]": rate, ...}`` (what torch users
    read as ``[g["lr"] for g in opt.param_groups]``).

    The keys name the groups as the errors do: ``"default"`` is the rate of
    the variables no group matches (the optimizer's own rate, listed even
    when every variable is in a group), ``"param_groups[i]"`` that of the
    constructor's group ``i``. Each value is the rate the update at
    ``opt.iterations`` uses: the schedule's value at that step (or the float
    rate), times ``learning_rate_scale`` (ReduceLROnPlateau), times the
    group's factor. Needs the optimizer built when it has groups (they are
    resolved against the variables in ``build``).
    """
    specs = getattr(opt, "_param_groups", None) or []
    groups = getattr(opt, "_groups", None) or [None]
    if specs and len(groups) != len(specs) + 1:
        raise ValueError(
            "`group_learning_rates()` needs the optimizer built: its "
            "param_groups are resolved against the variables in `build`. "
            "Call `optimizer.build(model.trainable_variables)` first (or "
            "read it after the first training step).")
    lr = opt._scaled_learning_rate(opt._get_current_learning_rate())
    out = {}
    for i, group in enumerate(groups):
        value = _rate_of(opt, group, lr)
        key = "default" if i == 0 else f"param_groups[{i - 1}]"
        out[key] = float(keras.ops.convert_to_numpy(value))
    return out


# ------------------------------------------------------------------ config
def serialize(groups):
    """``param_groups`` for ``get_config``: regexes as they are, lists of
    variables as lists of their paths, schedules and registered callables
    with ``keras.saving.serialize_keras_object``."""
    out = []
    for i, group in enumerate(groups):
        entry = {}
        for key, value in group.items():
            if key == "params":
                entry[key] = _serialize_selector(i, group, value)
            elif isinstance(value, LearningRateSchedule):
                entry[key] = keras.optimizers.schedules.serialize(value)
            else:
                entry[key] = value
        out.append(entry)
    return out


def _serialize_selector(i, group, params):
    if isinstance(params, str):
        return params
    if isinstance(params, (list, tuple)):
        return [_variable_key(v) for v in params]
    if not _serializable(params):  # (refused by the constructor already)
        raise ValueError(_unserializable_message(i, group, params))
    return keras.saving.serialize_keras_object(params)


# ----------------------------------------------------------------- helpers
def _trainable(model, helper):
    """The model's trainable variables; raises for a model that is not
    built yet (it has none, or only some of them, and the helper would
    silently leave the biases and norms created later in the decayed
    default group)."""
    unbuilt = [layer.name for layer in _layers(model)
               if not getattr(layer, "built", True)]
    if not getattr(model, "built", True) or unbuilt:
        what = f" (layers not built: {unbuilt})" if unbuilt else ""
        raise ValueError(
            f"`{helper}(model)` needs a built model: the groups are lists "
            "of the model's variables, which Keras creates when the model "
            f"is built, and model '{model.name}' is not built yet{what}. "
            "Build it first: give it a `keras.Input`, call "
            "`model.build(input_shape)`, or call it on a batch.")
    return list(model.trainable_variables)


def _layers(layer):
    """Every layer nested in ``layer`` (``layer.layers``, recursively)."""
    out = []
    for child in getattr(layer, "layers", None) or []:
        out.append(child)
        out.extend(_layers(child))
    return out


def _last_name(variable):
    return variable.path.rsplit("/", 1)[-1]


def _no_decay(variable, patterns, exclude_1d):
    if exclude_1d and len(variable.shape) <= 1:
        return True
    return any(fnmatch.fnmatch(variable.path, p) for p in patterns)


def no_weight_decay(model, embeddings=True, no_weight_decay_list=(),
                    exclude=None):
    """The usual torch recipe: no weight decay on biases, normalisation
    scales/offsets and embeddings.

    Returns ``[{"params": [variables], "weight_decay": 0.0}]`` for the
    model's trainable variables of rank <= 1 (biases, the gamma/beta of
    normalisation layers: timm's ``param_groups_weight_decay`` rule), the
    ``embeddings`` variables of ``Embedding`` layers (when ``embeddings``)
    and those whose path matches one of the ``fnmatch`` patterns in
    ``no_weight_decay_list``; or ``[]`` when there are none. The rest keep
    the optimizer's weight decay (the default group).

        opt = oz.AdamW(1e-3, weight_decay=0.05,
                       param_groups=oz.param_groups.no_weight_decay(model))

    A variable belongs to one group only (as in torch): to give some of
    these variables a group of their own (a head's bias with the head's
    rate), leave them out with ``exclude``, a regular expression searched
    in ``variable.path`` (or a list of variables).

    The model must be built (its variables exist); an unbuilt model
    raises a ``ValueError``.
    """
    excluded = _excluder(exclude)
    chosen = [
        v for v in _trainable(model, "no_weight_decay")
        if (_no_decay(v, no_weight_decay_list, True)
            or (embeddings and _last_name(v) == "embeddings"))
        and not excluded(v)
    ]
    return [{"params": chosen, "weight_decay": 0.0}] if chosen else []


def _excluder(exclude):
    if exclude is None:
        return lambda v: False
    if isinstance(exclude, str):
        pattern = re.compile(exclude)
        return lambda v: pattern.search(v.path) is not None
    if isinstance(exclude, (list, tuple)):
        ids = {id(v) for v in exclude}
        return lambda v: id(v) in ids
    raise ValueError(
        "Argument `exclude` must be None, a regular expression (searched in "
        "`variable.path`) or a list of variables. Received: "
        f"exclude={exclude!r}")


def default_layer_ids(model):
    """Layer id of each trainable variable (by ``id``) for
    :func:`layer_decay`: the model's top-level layers (``model.layers``)
    that own trainable variables are numbered 0, 1, 2, ... in order; a
    variable of a nested layer gets the id of the top-level layer holding
    it. For a model built as [embedding/stem, block 1, ..., block n, head]
    this is timm's numbering (stem 0, blocks 1..n, head n + 1)."""
    ids = {}
    next_id = 0
    for layer in model.layers:
        owned = [v for v in layer.trainable_variables if id(v) not in ids]
        if not owned:
            continue
        for v in owned:
            ids[id(v)] = next_id
        next_id += 1
    return ids


def layer_decay(model, decay, weight_decay=None, no_weight_decay_list=(),
                weight_decay_exclude_1d=True, min_scale=0.0, layer_ids=None):
    """Layer-wise learning-rate decay (BEiT), as timm's
    ``param_groups_layer_decay``.

    With ``L`` the largest layer id, a variable of layer ``i`` gets
    ``lr_scale = max(min_scale, decay ** (L - i))`` (the head keeps the full
    rate, the stem the smallest), and weight decay 0 when it has rank <= 1
    (``weight_decay_exclude_1d``) or its path matches a pattern of
    ``no_weight_decay_list`` (``fnmatch``), else ``weight_decay`` (``None``:
    the optimizer's own). Returns one group per (layer, decay) pair, in the
    order of ``model.trainable_variables``, as timm orders its groups.

    Args:
        model: a Keras model.
        decay: the per-layer factor (timm's ``layer_decay``), in (0, 1].
        layer_ids: how variables map to layers: ``None`` (the default,
            :func:`default_layer_ids`: top-level layers in order), a dict
            ``{regex: id}`` (the first regex searched in ``variable.path``
            that matches wins) or a callable ``variable -> id``. A variable
            without an id gets the largest id, as timm does.

    The model must be built (its variables exist); an unbuilt model
    raises a ``ValueError``.
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) \
            or not 0.0 < decay <= 1.0:
        raise ValueError(
            f"Argument `decay` must be in (0, 1]. Received: decay={decay!r}")
    decay = float(decay)
    variables = _trainable(model, "layer_decay")
    if layer_ids is None:
        table = default_layer_ids(model)
        ids = [table.get(id(v)) for v in variables]
    elif isinstance(layer_ids, dict):
        compiled = [(re.compile(k), int(val)) for k, val in layer_ids.items()]
        ids = [next((val for k, val in compiled if k.search(v.path)), None)
               for v in variables]
    elif callable(layer_ids):
        ids = [layer_ids(v) for v in variables]
    else:
        raise ValueError(
            "Argument `layer_ids` must be None, a dict {regex: id} or a "
            f"callable. Received: layer_ids={layer_ids!r}")
    known = [i for i in ids if i is not None]
    layer_max = max(known) if known else 0
    scales = [max(min_scale, decay ** (layer_max - i))
              for i in range(layer_max + 1)]
    groups = {}
    for variable, layer in zip(variables, ids):
        layer = layer_max if layer is None else layer
        no_wd = _no_decay(variable, no_weight_decay_list,
                          weight_decay_exclude_1d)
        key = (layer, no_wd)
        if key not in groups:
            group = {"params": [], "lr_scale": scales[layer]}
            if no_wd:
                group["weight_decay"] = 0.0
            elif weight_decay is not None:
                group["weight_decay"] = weight_decay
            groups[key] = group
        groups[key]["params"].append(variable)
    return list(groups.values())
