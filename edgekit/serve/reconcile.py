"""Fitting a new version to the model a Triton repository already holds.

Triton serves every version of a model with one ``config.pbtxt``. A version deploy adds must
therefore have the inputs and outputs that config declares, and the rewritten config must keep
the model's batching, instance groups, version policy and labels. :func:`reconcile_version`
reads the model's config (when there is one), checks the new ONNX file against it and returns
what :func:`edgekit.formats.triton.add_model_version` needs to write the same config again.

Example:
    >>> class_names, options = reconcile_version(Path("triton_repo/cnn-digits"), Path("model_int8.onnx"))
    >>> options["max_batch_size"], options["version_policy"]
    (32, 'latest:1')
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.errors import RepositoryError
from edgekit.formats.onnx import CLASS_NAMES_KEY
from edgekit.formats.triton import CONFIG_FILENAME, LABELS_FILENAME, PLATFORM, build_model_config, \
    read_model_config



def reconcile_version(model_folder: Path, onnx_file: Path) -> tuple[list[str] | None, dict]:
    """Class names and config options for a new version, the model's own when it exists.

    Args:
        model_folder: ``<repository>/<model name>``; it need not exist yet.
        onnx_file: the ONNX file to add as a version.

    Returns:
        ``(class names or None, add_model_version options)``: the ONNX file's class names (else
        the model's labels file), and the existing model's batching, instances and policy (empty
        for a new model: add_model_version's defaults).

    Raises:
        RepositoryError: when the model exists with another platform, or with inputs / outputs
            (names, data types, dims) other than the new file's.
    """
    import onnx  # lazy: onnx is a heavy import, needed only to deploy

    proto = onnx.load(str(onnx_file), load_external_data=False)
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    class_names = json.loads(metadata[CLASS_NAMES_KEY]) if CLASS_NAMES_KEY in metadata else None
    if not (model_folder / CONFIG_FILENAME).is_file():
        return class_names, {}
    existing = read_model_config(model_folder)
    if existing.platform != PLATFORM:
        raise RepositoryError(
            f"model {model_folder.name!r} in {model_folder.parent} has platform/backend "
            f"{existing.platform or existing.backend!r}; deploy adds ONNX versions to {PLATFORM} "
            "models only; pass another --model-name"
        )
    if class_names is None and (model_folder / LABELS_FILENAME).is_file():
        class_names = (model_folder / LABELS_FILENAME).read_text().splitlines()
    options = config_options(existing)
    new = build_model_config(model_folder.name, proto, labels=False, **options)
    for kind in ("input", "output"):
        before = [(tensor.name, tensor.data_type, list(tensor.dims)) for tensor in getattr(existing, kind)]
        after = [(tensor.name, tensor.data_type, list(tensor.dims)) for tensor in getattr(new, kind)]
        if before != after:
            raise RepositoryError(
                f"{onnx_file.name} has {kind}s {after} but model {model_folder.name!r} serves {before}; "
                "Triton serves every version with one config, so deploy it under another --model-name"
            )
    return class_names, options


def config_options(config) -> dict:
    """``add_model_version`` options that rebuild ``config``'s batching, instances and policy.

    Args:
        config: a Triton ``ModelConfig`` protobuf (:func:`edgekit.formats.triton.read_model_config`).
    """
    policy = config.version_policy
    which = policy.WhichOneof("policy_choice")
    version_policy = {"all": "all", "specific": f"specific:{','.join(map(str, policy.specific.versions))}",
                      "latest": f"latest:{policy.latest.num_versions}"}.get(which, "latest:1")
    options = {"max_batch_size": config.max_batch_size, "version_policy": version_policy}
    if config.HasField("dynamic_batching"):
        options["preferred_batch_sizes"] = tuple(config.dynamic_batching.preferred_batch_size)
        options["max_queue_delay_us"] = config.dynamic_batching.max_queue_delay_microseconds
    if config.instance_group:
        group = config.instance_group[0]
        options["instance_count"] = group.count or 1
        options["instance_kind"] = "gpu" if group.kind == group.KIND_GPU else "cpu"
    return options


__all__ = ["CLASS_NAMES_KEY", "config_options", "reconcile_version"]
