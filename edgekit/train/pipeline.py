"""The tf.data input pipeline: shuffle, batch, augment on the fly, prefetch."""

from __future__ import annotations

import numpy as np

from edgekit._compat import tensorflow


def make_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0,
                  augmentation=None):
    """A batched ``tf.data.Dataset`` of ``(x, y)``.

    Augmentation layers run inside the pipeline with ``training=True``, so they exist only at
    training time and never in the saved model.
    """

    tf = tensorflow()
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    if augmentation is not None:
        data = data.map(lambda images, labels: (augmentation(images, training=True), labels),
                        num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Multi-worker runs shard by batch: in-memory arrays have no files to shard by.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options).prefetch(tf.data.AUTOTUNE)
