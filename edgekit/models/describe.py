"""A JSON-ready summary of a classifier: parameters, input, output and layer count."""

from __future__ import annotations

from typing import Any

from edgekit._compat import keras
from edgekit.errors import DataError, ModelError
from edgekit.models.keras3 import is_keras3_model


def check_single_input_output(model, source: str = "the model") -> None:
    """Raise :class:`ModelError` unless ``model`` is a tf-keras model with one input and one output.

    Args:
        model: the model to check.
        source: how to name the model in the message (e.g. its file path).

    Raises:
        ModelError: for anything that is not a single-input single-output tf-keras model.
    """
    tf_keras = keras()
    if not isinstance(model, tf_keras.Model) and not _is_keras3(model):
        raise ModelError(
            f"{source} is a {type(model).__module__}.{type(model).__name__}; expected a tf-keras "
            f"(Keras 2) model; build it with tf_keras or import edgekit before tensorflow"
        )
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise ModelError(
            f"{source} has no defined inputs or outputs (a subclassed or unbuilt model); expected "
            f"a functional or Sequential model; rebuild it with tf_keras.Input and save it again"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"{source} has {len(inputs)} inputs and {len(outputs)} outputs; edgekit handles "
            f"single-input single-output classifiers; save a model with one input and one output"
        )


def describe_model(model) -> dict[str, Any]:
    """Summarize a single-input single-output tf-keras model in plain JSON types.

    Args:
        model: a tf-keras model, e.g. from :func:`build_model` or :func:`load_model_file`.

    Returns:
        ``{"name", "parameters": {"total", "trainable", "non_trainable"},
        "input": {"name", "shape", "dtype"}, "output": {"name", "shape", "dtype", "activation"},
        "layers"}``. Shapes are lists with ``None`` for the batch axis; ``layers`` counts layers
        other than the input layer; ``output.activation`` is the last layer's activation name
        (``"softmax"`` for every zoo model), or None when the last layer has none.

    Raises:
        ModelError: if the model is not a single-input single-output tf-keras model.

    Example:
        >>> describe_model(build_model("mlp", (8, 8, 1), 10))["parameters"]["total"]
        9610
    """
    check_single_input_output(model)
    trainable = _count(model.trainable_weights)
    non_trainable = _count(model.non_trainable_weights)
    last_layer = model.layers[-1]
    activation = getattr(last_layer, "activation", None)
    keras3 = _is_keras3(model)
    input_name = model.inputs[0].name if keras3 else model.input_names[0]
    output_name = model.outputs[0].name if keras3 else model.output_names[0]
    return {
        "keras": _keras_of(model),
        "name": model.name,
        "parameters": {
            "total": trainable + non_trainable,
            "trainable": trainable,
            "non_trainable": non_trainable,
        },
        "input": _tensor_summary(input_name, model.inputs[0]),
        "output": {
            **_tensor_summary(output_name, model.outputs[0]),
            "activation": getattr(activation, "__name__", None),
        },
        "layers": sum(type(layer).__name__ != "InputLayer" for layer in model.layers),
    }


def _is_keras3(model) -> bool:

    return is_keras3_model(model)


def _keras_of(model) -> dict:
    """Which Keras the model object belongs to, and its version."""
    if _is_keras3(model):
        # lazy: Keras 3 is needed only for Keras 3 models
        import keras as keras3

        return {"api": "keras3", "version": keras3.__version__}
    return {"api": "tf-keras", "version": keras().__version__}


def _count(weights) -> int:
    total = 0
    for weight in weights:
        size = 1
        for dimension in weight.shape:
            size *= int(dimension)
        total += size
    return total


def _tensor_summary(name: str, tensor) -> dict[str, Any]:
    shape = [None if size is None else int(size) for size in tensor.shape]
    dtype = tensor.dtype if isinstance(tensor.dtype, str) else tensor.dtype.name
    return {"name": name, "shape": shape, "dtype": dtype}


def check_model_fits_dataset(model, dataset, source: str,
                             fix: str = "Pass the dataset it was trained on") -> None:
    """Raise DataError unless ``model`` takes ``dataset``'s samples and has one output per class.

    Args:
        model: a single-input, single-output tf-keras classifier.
        dataset: an :class:`edgekit.data.Dataset`.
        source: how to name the model in the message (its path).
        fix: the last sentence of the message: what the user should do.
    """

    expected = tuple(model.input_shape[1:])
    if expected != tuple(dataset.sample_shape):
        raise DataError(
            f"model {source} takes inputs of shape {expected}; dataset {dataset.name!r} has "
            f"samples of shape {tuple(dataset.sample_shape)}. {fix}"
        )
    outputs = int(model.output_shape[-1])
    if outputs != dataset.num_classes:
        raise DataError(
            f"model {source} has {outputs} outputs; dataset {dataset.name!r} has "
            f"{dataset.num_classes} classes. {fix}"
        )
