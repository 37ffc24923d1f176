"""Rebuild a live Keras 3 model as an equivalent tf-keras (Keras 2) model, weights included.

tfmot (pruning, clustering, QAT) accepts only tf-keras models, and tf-keras cannot read a Keras 3
``.keras``/``.h5`` file. A Keras 3 model that is already loaded can still be rebuilt layer by
layer: each built-in Keras 3 layer has a tf-keras twin that takes the same config (minus a few
Keras 3 additions such as ``quantization_config``) and holds the same weights in the same order.
TensorFlow and both Kerases are imported only when a function here runs.

Example (``samples``: a few inputs, e.g. from the training set):
    >>> import keras
    >>> from edgekit.models.keras3_rebuild import max_abs_difference, rebuild_as_tf_keras
    >>> original = keras.saving.load_model("m.keras")
    >>> rebuilt = rebuild_as_tf_keras(original, source="m.keras", flatten=True)
    >>> max_abs_difference(original, rebuilt, samples) <= 1e-5
    True
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from edgekit._compat import keras as _tf_keras
from edgekit._compat import tensorflow as _tensorflow
from edgekit.errors import ModelError

UNSUPPORTED_HINT = (
    "post-training quantization (--int8, --int8-io, --dynamic, --fp16, --int16x8) needs no "
    "conversion and still applies"
)
_NEEDS_GRAPH = "pruning, clustering and QAT need a functional graph of built-in Keras layers"

# tf-keras' Layer.__init__ takes these through **kwargs (its `allowed_kwargs`), so no signature
# shows them; the rest of its allowed kwargs (input_shape, ...) Keras 3 configs never carry.
_LAYER_KWARGS = frozenset({"activity_regularizer", "implementation"})
_FLOAT_POLICIES = frozenset({"DTypePolicy", "FloatDTypePolicy"})
_PARAMETER_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
# Keys a tf-keras from_config() pops before calling __init__, so the signature cannot show them;
# None lets the layer build on its first call, like every other layer here.
_FROM_CONFIG_KEYS = {"MultiHeadAttention": {"query_shape": None, "key_shape": None, "value_shape": None}}


class RebuildError(ModelError):
    """A Keras 3 model or layer that has no tf-keras equivalent edgekit can build."""


def _keras3():
    """Return Keras 3, imported after TensorFlow so that ``tf.keras`` stays tf-keras."""
    _tensorflow()
    # lazy: Keras 3 is needed only for Keras 3 models
    import keras

    return keras


def is_keras3_model(model) -> bool:
    """True when ``model`` is a Keras 3 ``keras.Model`` (not a tf-keras one, not another object).

    Keras 3 is imported only when a class in ``model``'s hierarchy comes from a ``keras`` module,
    so asking about a tf-keras model or a plain object never loads it.
    """
    if not any(cls.__module__.startswith("keras") for cls in type(model).__mro__):
        return False
    return isinstance(model, _keras3().Model)


def _layer_error(source: str, layer, reason: str) -> RebuildError:
    return RebuildError(
        f"{source}: Keras 3 layer '{layer.name}' ({type(layer).__name__}) cannot be rebuilt as "
        f"tf-keras: {reason}; {_NEEDS_GRAPH}: replace it with built-in layers, or skip those "
        f"techniques; {UNSUPPORTED_HINT}"
    )


@functools.lru_cache(maxsize=None)
def _accepted_keys(cls) -> frozenset:
    """Every keyword the ``__init__`` chain of tf-keras class ``cls`` accepts."""
    keys = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:  # signature() follows functools.wraps, which tf-keras' init decorators use
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        keys.update(p.name for p in parameters if p.kind in _PARAMETER_KINDS)
    keys.discard("self")
    if issubclass(cls, _tf_keras().layers.Layer):
        keys |= _LAYER_KWARGS
    return frozenset(keys)


def _convert_config(class_name: str, config: dict, namespace: str, fail) -> dict:
    """Keras 3 ``config`` of ``class_name`` -> the keys tf-keras' twin class accepts, converted."""
    cls = getattr(getattr(_tf_keras(), namespace, None), class_name, None)
    if not isinstance(cls, type):
        raise fail(f"tf-keras has no built-in {namespace} class '{class_name}'")
    accepted = _accepted_keys(cls)
    return {key: _convert_value(value, fail) for key, value in config.items() if key in accepted}


def _convert_value(value, fail):
    """One config value: Keras 3 serialized objects become tf-keras (legacy format) ones."""
    if isinstance(value, (list, tuple)):
        return type(value)(_convert_value(item, fail) for item in value)
    if not (isinstance(value, dict) and "class_name" in value and "config" in value):
        return value
    class_name, module = value["class_name"], value.get("module") or "keras.layers"
    if class_name.endswith("DTypePolicy"):
        # int8/float8 Keras 3 quantized layers store other weights (int kernels plus scales).
        if class_name not in _FLOAT_POLICIES:
            raise fail(f"it is quantized by Keras 3 ({class_name})")
        return value["config"]["name"]
    if class_name == "function" and module.startswith("keras"):
        return value["config"]  # a built-in function (e.g. an activation) by name
    if not module.startswith("keras."):
        raise fail(f"its config holds the custom object '{class_name}' (module '{module}')")
    namespace = module.rsplit(".", 1)[-1]  # keras.initializers -> tf_keras.initializers, ...
    return {"class_name": class_name, "config": _convert_config(class_name, value["config"], namespace, fail)}


def _copy_weights(layer, twin, fail) -> None:
    weights = layer.get_weights()
    received = [tuple(np.shape(w)) for w in weights]
    expected = [tuple(w.shape) for w in twin.weights]
    if received != expected:
        raise fail(f"its weights have shapes {received}, the tf-keras layer expects {expected}")
    # tf-keras' set_weights also calls finalize_state(), which refreshes the mean/variance tensors
    # an adapted Normalization caches at build time: no extra step for preprocessing layers.
    twin.set_weights(weights)


class _Rebuilder:
    """Walks one Keras 3 graph in dependency order and builds the tf-keras twin of each node."""

    def __init__(self, source: str, flatten: bool, twins: dict | None = None):
        self.tfk, self.k3, self.tf = _tf_keras(), _keras3(), _tensorflow()
        self.source, self.flatten = source, flatten
        self.twins = {} if twins is None else twins  # id(Keras 3 layer) -> twin: shared stays shared
        self.names: set[str] = set()

    def model(self, model):
        """The tf-keras twin of Keras 3 ``model``, as a functional model of the same name."""
        self._check_graph(model)
        # Top-level names are kept as they are; inlined layers give way to them on a clash.
        self.names.update(layer.name for layer in model.layers)
        k3_inputs = self.k3.tree.flatten(getattr(model, "_inputs_struct", model.inputs))
        inputs = [self._input(tensor) for tensor in k3_inputs]
        outputs = self._run(model, inputs, prefix=None)
        pack = functools.partial(self.tf.nest.pack_sequence_as, expand_composites=False)
        structure = getattr(model, "_outputs_struct", model.outputs)
        inputs_struct = getattr(model, "_inputs_struct", model.inputs)
        return self.tfk.Model(pack(inputs_struct, inputs), pack(structure, outputs), name=model.name)

    def _check_graph(self, model) -> None:
        # Functional is not exported by Keras 3; keras.Model(inputs, outputs) returns one.
        # lazy: Keras 3 is needed only for Keras 3 models
        from keras.src.models.functional import Functional

        kind = Functional if isinstance(model, Functional) else self.k3.Sequential
        if not isinstance(model, kind) or type(model).call is not kind.call:
            raise RebuildError(
                f"{self.source}: the Keras 3 model '{model.name}' ({type(model).__name__}) is a "
                f"subclassed model with no functional graph to rebuild; {_NEEDS_GRAPH}: rebuild it "
                f"functionally, or use post-training quantization; {UNSUPPORTED_HINT}"
            )
        if not model.built or not model.inputs:
            raise RebuildError(
                f"{self.source}: the Keras 3 model '{model.name}' has no input shape yet; expected a "
                "built model: start it with keras.Input(shape) or call it on a batch first"
            )

    def _input(self, tensor):
        input_layer = tensor._keras_history.operation
        config = input_layer.get_config()
        shape = tuple(config["batch_shape"])
        return self.tfk.Input(
            shape=shape[1:],
            batch_size=shape[0],
            dtype=_convert_value(config["dtype"], functools.partial(_layer_error, self.source, input_layer)),
            sparse=config.get("sparse") or None,
            ragged=config.get("ragged") or None,
            name=self._claim(config["name"], None),
        )

    def _claim(self, name: str, prefix: str | None) -> str:
        """A layer name unique in the rebuilt model (an inlined layer may get its model's prefix)."""
        candidate, count = name, 1
        while prefix is not None and candidate in self.names:
            count += 1
            candidate = f"{prefix}_{name}" if count == 2 else f"{prefix}_{name}_{count - 1}"
        self.names.add(candidate)
        return candidate

    def _run(self, model, inputs: list, prefix: str | None) -> list:
        """Run ``model``'s graph on tf-keras tensors ``inputs`` (flat); its outputs, flat."""
        if isinstance(model, self.k3.Sequential):
            x = inputs[0] if len(inputs) == 1 else inputs
            for layer in model.layers:  # exactly what Sequential.call does
                outputs = self._call(layer, (x,), {}, prefix)
                x = outputs[0] if len(outputs) == 1 else outputs
            return [x]
        tensors = {id(t): v for t, v in zip(self.k3.tree.flatten(model._inputs_struct), inputs)}
        for node in self._nodes_in_order(model.outputs, tensors):
            if node.is_input:
                raise RebuildError(f"{self.source}: the graph of '{model.name}' uses an input missing from model.inputs")
            args, kwargs = self.k3.tree.map_structure(
                lambda v: tensors[id(v)] if isinstance(v, self.k3.KerasTensor) else v,
                self._arguments(node),
            )
            outputs = self._call(node.operation, args, kwargs, prefix)
            if len(outputs) != len(node.outputs):
                raise _layer_error(self.source, node.operation, f"its tf-keras twin gives {len(outputs)} outputs, "
                                   f"the Keras 3 layer {len(node.outputs)}")
            for tensor, value in zip(node.outputs, outputs):
                tensors[id(tensor)] = value
        return [tensors[id(t)] for t in model.outputs]

    def _arguments(self, node) -> tuple:
        """The ``(args, kwargs)`` ``node`` was called with, minus what tf-keras must not get.

        Keras 3 records the mask it propagates from an input (e.g. Embedding(mask_zero=True)) as an
        explicit ``mask=`` argument made by a NotEqual op; tf-keras propagates that mask by itself.
        A recorded ``training=`` (``backbone(x, training=False)``) is only a default in Keras 3: the
        model's own ``training`` (fit: True, predict: False) overrides it, where tf-keras would fix
        it for good. Dropping it keeps Keras 3's behaviour; a frozen backbone stays frozen through
        its layers' ``trainable=False``, which the configs carry over.
        """
        args, kwargs = node.arguments.args, dict(node.arguments.kwargs)
        kwargs.pop("training", None)
        tensors = [t for t in self.k3.tree.flatten((args, kwargs)) if isinstance(t, self.k3.KerasTensor)]
        propagated = {id(getattr(t, "_keras_mask", None)) for t in tensors} - {id(None)}
        for key in [k for k in kwargs if k == "mask" or k.endswith("_mask")]:
            masks = [m for m in self.k3.tree.flatten(kwargs[key]) if m is not None]
            if all(id(m) in propagated for m in masks):
                del kwargs[key]
        return args, kwargs

    def _nodes_in_order(self, outputs, known: dict) -> list:
        """The nodes ``outputs`` depend on, each after its inputs' nodes (no recursion: deep nets)."""

        def producer(tensor):
            history = tensor._keras_history
            return history.operation._inbound_nodes[history.node_index]

        order, done = [], set()
        stack = [(producer(t), False) for t in reversed(outputs) if id(t) not in known]
        while stack:
            node, inputs_done = stack.pop()
            if id(node) in done:
                continue
            if inputs_done:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            inputs = [t for t in self.k3.tree.flatten(self._arguments(node)) if isinstance(t, self.k3.KerasTensor)]
            stack.extend((producer(t), False) for t in inputs if id(t) not in known)
        return order

    def _call(self, operation, args, kwargs, prefix) -> list:
        """Apply the twin of ``operation`` to tf-keras tensors; its outputs, flat."""
        if isinstance(operation, self.k3.Model):
            if self.flatten:  # inline: the nested model's layers join this graph
                inner_prefix = operation.name if prefix is None else f"{prefix}_{operation.name}"
                return self._run(operation, self.tf.nest.flatten(args[0]), inner_prefix)
            if id(operation) not in self.twins:
                self.twins[id(operation)] = _Rebuilder(self.source, False, self.twins).model(operation)
            return self.tf.nest.flatten(self.twins[id(operation)](*args, **kwargs))
        fail = functools.partial(_layer_error, self.source, operation)
        twin = self.twins.get(id(operation))
        if twin is not None:  # a shared layer: call the same twin again, weights already set
            return self.tf.nest.flatten(twin(*args, **kwargs))
        if not isinstance(operation, self.k3.layers.Layer):
            raise fail("it is a Keras 3 operation applied to tensors directly (keras.ops or tensor arithmetic), "
                       "not a layer; use a built-in layer such as Add or Activation instead")
        class_name = type(operation).__name__
        twin_class = getattr(self.tfk.layers, class_name, None)
        if not type(operation).__module__.startswith("keras.") or not (
            isinstance(twin_class, type) and issubclass(twin_class, self.tfk.layers.Layer)
        ):
            raise fail("tf-keras has no built-in layer of this class (a custom or Keras 3-only layer)")
        config = _convert_config(class_name, operation.get_config(), "layers", fail)
        config.update(_FROM_CONFIG_KEYS.get(class_name, {}), name=self._claim(operation.name, prefix))
        try:
            twin = self.tfk.layers.deserialize({"class_name": class_name, "config": config}, use_legacy_format=True)
            outputs = self.tf.nest.flatten(twin(*args, **kwargs))
        except Exception as error:  # whatever tf-keras objects to, the answer is this layer's name
            raise fail(f"tf-keras refused it ({str(error).splitlines()[0]})") from error
        _copy_weights(operation, twin, fail)
        self.twins[id(operation)] = twin
        return outputs


def rebuild_as_tf_keras(model, source: str = "model", flatten: bool = False):
    """Rebuild a Keras 3 functional or Sequential model as a tf-keras model with the same weights.

    Args:
        model: A built Keras 3 ``keras.Model`` (functional or Sequential, possibly nesting others).
        source: What to call the model in error messages (e.g. its file path).
        flatten: Inline nested models' layers into one flat functional graph (tfmot's pruning and
            QAT need it); a clashing inner layer name gets the nested model's name as a prefix.

    Returns:
        A functional ``tf_keras.Model`` named like ``model`` (a Sequential becomes functional).

    Raises:
        RebuildError: ``model`` is not Keras 3, is subclassed or unbuilt, or holds a layer
            (named in the message) that has no built-in tf-keras twin.
    """
    if not is_keras3_model(model):
        raise RebuildError(
            f"{source}: received a {type(model).__module__}.{type(model).__name__}, expected a Keras 3 "
            "keras.Model; tf-keras models need no rebuilding"
        )
    return _Rebuilder(source, flatten).model(model)


def max_abs_difference(keras3_model, tf_keras_model, x, batch_size: int = 256) -> float:
    """Largest absolute difference between the two models' outputs on ``x``, in float32.

    Args:
        keras3_model: The Keras 3 original.
        tf_keras_model: Its tf-keras rebuild.
        x: Input array (or a list/dict of arrays for a multi-input model).
        batch_size: Samples per forward pass.

    Returns:
        max |keras3_model(x) - tf_keras_model(x)| over every output element (0.0 for no samples).
    """
    tf = _tensorflow()
    count = len(tf.nest.flatten(x)[0])
    worst = 0.0
    for start in range(0, count, batch_size):
        batch = tf.nest.map_structure(lambda a: a[start : start + batch_size], x)
        ours = [np.asarray(o, dtype=np.float32) for o in tf.nest.flatten(keras3_model(batch, training=False))]
        theirs = [np.asarray(o, dtype=np.float32) for o in tf.nest.flatten(tf_keras_model(batch, training=False))]
        if [o.shape for o in ours] != [o.shape for o in theirs]:
            raise ModelError(
                f"output shapes differ: Keras 3 {[o.shape for o in ours]}, tf-keras {[o.shape for o in theirs]}; "
                "expected the tf-keras model rebuilt from this Keras 3 model"
            )
        worst = max([worst] + [float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs) if a.size])
    return worst
