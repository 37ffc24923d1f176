"""Weight clustering (``--cluster N``): N shared values per kernel, k-means++ init, fine-tuned.

After pruning, clustering preserves the zeros (tfmot's ``preserve_sparsity``), so the two
combine. Clustering fine-tunes in float32 whatever ``--precision`` says: tfmot's k-means++
initialization has float32 kernels only. A kernel with no more than N weights already has at
most N distinct values and is left as it is (tfmot's k-means needs more points than clusters).
"""

from __future__ import annotations

import numpy as np

from edgekit._compat import keras
from edgekit.compress.finetune import clone_with_policy, fine_tune, float_model
from edgekit.compress.layers import (
    WEIGHTLESS_LAYERS,
    LayerTable,
    layers_to_compress,
    register_layer_table,
)
from edgekit.compress.stages import TECHNIQUES, StageContext, StageResult, Technique
from edgekit.errors import ModelError
from edgekit.options import Option

CLUSTER = Option("cluster", int, None, "the number of weight clusters per layer (k-means++ init, "
                 "with fine-tuning)", minimum=2, example="16", metavar="N")


def _is_clusterable(layer) -> bool:
    import tensorflow_model_optimization as tfmot  # lazy: tfmot loads TensorFlow

    return isinstance(layer, tfmot.clustering.keras.ClusterableLayer)


# Layer classes after tfmot 0.8.1's clustering_registry; tfmot leaves DepthwiseConv2D
# unclustered (it says clustering costs too much accuracy there).
register_layer_table(LayerTable(
    "cluster", "--cluster",
    ("Conv1D", "Conv2D", "Conv2DTranspose", "SeparableConv2D", "Dense", "Embedding", "LSTM", "GRU",
     "SimpleRNN"),
    ("DepthwiseConv2D", "BatchNormalization", "LayerNormalization", *WEIGHTLESS_LAYERS),
    _is_clusterable))


@TECHNIQUES.register("cluster")
class Cluster(Technique):
    """Cluster the kernels of the table's clusterable layers, fine-tune, strip the wrappers."""

    name = "cluster"
    order = 20
    options = (CLUSTER,)
    learning_rate = 1e-4  # clustering adjusts a trained model: it moves gently

    def layer_table(self, config) -> str:
        return "cluster"

    def apply(self, model, context: StageContext) -> StageResult:
        import tensorflow_model_optimization as tfmot  # lazy: tfmot loads TensorFlow

        clusters = context.config.cluster
        candidates = layers_to_compress(model, "cluster")
        chosen = [layer for layer in candidates if layer.get_weights()[0].size > clusters]
        kept = [{"layer": layer.name, "reason": f"{layer.get_weights()[0].size} weights <= "
                 f"{clusters} clusters"} for layer in candidates if layer not in chosen]
        if not chosen:
            raise ModelError(
                f"--cluster {clusters} found no layer with more than {clusters} weights in model "
                f"{model.name!r}; post-training quantization still applies. Use fewer clusters "
                "or drop --cluster"
            )
        preserve_sparsity = "prune" in context.applied
        options = {
            "number_of_clusters": clusters,
            "cluster_centroids_init": tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
        }
        if preserve_sparsity:
            options["preserve_sparsity"] = True
        names = {layer.name for layer in chosen}
        working = clone_with_policy(model, "float32")

        def wrap(layer):
            if layer.name in names:
                return tfmot.clustering.keras.cluster_weights(layer, **options)
            return layer

        wrapped = keras().models.clone_model(working, clone_function=wrap)
        finetune = fine_tune(wrapped, context, self.name)
        stripped = tfmot.clustering.keras.strip_clustering(wrapped)
        result = float_model(stripped, model)
        distinct = {name: int(len(np.unique(result.get_layer(name).get_weights()[0])))
                    for name in sorted(names)}
        return StageResult(model=result, record={
            "technique": "weight clustering (tfmot cluster_weights, k-means++ init)",
            "clusters": clusters,
            "preserve_sparsity": preserve_sparsity,
            "clustered_layers": sorted(names),
            "kept_unclustered": kept,
            "distinct_kernel_values": distinct,
            "finetune": finetune,
        })
