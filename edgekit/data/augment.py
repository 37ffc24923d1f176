"""Label-preserving image augmentation, applied to training batches only.

The layers are tf-keras preprocessing layers. They are identity at inference, but the trainer
maps them over the training ``tf.data`` pipeline (``layers(x, training=True)``) rather than
putting them in the model, so saved, converted and exported models never carry them.
"""

from __future__ import annotations

from edgekit._compat import keras
from edgekit.data.base import Dataset
from edgekit.errors import OptionError

TRANSLATION_FRACTION = 0.1  # of height and width
ZOOM_FRACTION = 0.1


def augmentation_layers(dataset: Dataset, seed: int | None = None):
    """Build the augmentation for ``dataset``: shift, zoom and, where it keeps labels, mirror.

    Args:
        dataset: An image dataset; ``dataset.augmentable["flip"]`` decides on horizontal
            flips (a mirrored shirt is a shirt, a mirrored 7 is not a 7).
        seed: Seed of the random layers, for reproducible batches; None for fresh randomness.

    Returns:
        A ``tf_keras.Sequential`` named ``"augmentation"`` whose output has its input's shape.

    Raises:
        OptionError: If the dataset holds sequences rather than images.

    Example:
        >>> augment = augmentation_layers(dataset, seed=0)
        >>> train = train.map(lambda x, y: (augment(x, training=True), y))
    """
    if dataset.kind != "image":
        raise OptionError(
            f"--augment works on image datasets; received {dataset.kind} data "
            f"{dataset.sample_shape} from {dataset.name!r}; drop --augment for this dataset"
        )

    tf_keras = keras()
    layers = [
        tf_keras.layers.RandomTranslation(
            TRANSLATION_FRACTION, TRANSLATION_FRACTION, fill_mode="nearest", seed=seed
        ),
        tf_keras.layers.RandomZoom(ZOOM_FRACTION, fill_mode="nearest", seed=seed),
    ]
    if dataset.augmentable.get("flip"):
        layers.append(tf_keras.layers.RandomFlip("horizontal", seed=seed))
    return tf_keras.Sequential(layers, name="augmentation")
