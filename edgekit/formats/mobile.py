"""The mobile bundle: what an app developer needs to run the model, and nothing else.

A folder and the same files in a .zip::

    model.tflite     the TFLite model
    labels.txt       class names, one a line, in output order
    metadata.json    input / output shape, dtype and quantization; normalization; class order
    README.md        how to run it with LiteRT on Android (Kotlin) and in Python

``metadata.json`` alone is enough to turn raw samples into the model's input: normalize with
``(x * scale - mean) / std``, then, for an int8 input, quantize with ``q = round(x / s) + z``.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from edgekit.formats.labels import labels_text
from edgekit.runtimes.litert import LiteRTModel

BUNDLE_FORMAT = "edgekit-mobile-bundle"
BUNDLE_SCHEMA_VERSION = 1
MODEL_FILE = "model.tflite"
LABELS_FILE = "labels.txt"
METADATA_FILE = "metadata.json"
README_FILE = "README.md"
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed, so the same bundle always has the same sha256


def write_mobile_bundle(folder: str | os.PathLike, zip_path: str | os.PathLike,
                        tflite_path: str | os.PathLike, precision: str, class_names: list[str],
                        preprocessing: dict, model_name: str, sample_shape: list[int]) -> dict:
    """Write the bundle folder and its .zip; returns the metadata written.

    Args:
        folder: the bundle folder to create.
        zip_path: the .zip to write (its files sit in a folder named after ``folder``).
        tflite_path: the .tflite to ship.
        precision: its TFLite precision (fp32, fp16, dynamic, int8, int16x8).
        class_names: in output order.
        preprocessing: ``{"scale", "mean", "std"}`` as recorded in the model's manifest.
        model_name: shown in the README.
        sample_shape: one raw sample's shape, e.g. ``[8, 8, 1]``.
    """
    folder, zip_path = Path(folder), Path(zip_path)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tflite_path, folder / MODEL_FILE)
    runtime = LiteRTModel.load(folder / MODEL_FILE)
    described = runtime.describe()
    signature = _signature(folder / MODEL_FILE)
    metadata = {
        "format": BUNDLE_FORMAT,
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "model": {"name": model_name, "file": MODEL_FILE, "precision": precision,
                  "bytes": (folder / MODEL_FILE).stat().st_size},
        "signature": signature,
        "input": {**described["input"], "layout": _layout(sample_shape)},
        "output": {**described["output"], "meaning": "class probabilities (softmax), one per label"},
        "normalization": {"scale": float(preprocessing["scale"]),
                          "mean": _plain(preprocessing["mean"]),
                          "std": _plain(preprocessing["std"]),
                          "formula": "(x * scale - mean) / std",
                          "per_channel": isinstance(preprocessing["mean"], list)
                          or isinstance(preprocessing["std"], list),
                          "none": bool(preprocessing.get("none", False)),
                          "raw_sample_shape": list(sample_shape),
                          "raw_range": _raw_range(preprocessing),
                          "source": preprocessing.get("detail") or preprocessing.get("source")},
        "labels": {"file": LABELS_FILE, "class_names": list(class_names)},
        "steps": [
            "x = (raw * normalization.scale - normalization.mean) / normalization.std",
            "if input.quantization: q = clip(round(x / input.quantization.scale) + "
            "input.quantization.zero_point, dtype range) as input.dtype",
            "run the model on a batch of shape input.shape (-1 = any batch size)",
            "if output.quantization: y = (q - output.quantization.zero_point) * "
            "output.quantization.scale",
            "class = labels.class_names[argmax(y)]",
        ],
    }
    (folder / LABELS_FILE).write_text(labels_text(class_names))
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    (folder / README_FILE).write_text(_readme(metadata))
    _zip_folder(folder, zip_path)
    return metadata


def _plain(value):
    return [float(v) for v in value] if isinstance(value, list) else float(value)


def _raw_range(preprocessing: dict):
    raw = preprocessing.get("raw") or {}
    if raw.get("min") is None or raw.get("max") is None:
        return None
    return [float(raw["min"]), float(raw["max"])]


def preprocess(raw: np.ndarray, metadata: dict) -> np.ndarray:
    """Raw samples to the bundle model's input tensor, following ``metadata.json`` only."""
    norm = metadata["normalization"]
    mean = np.asarray(norm["mean"], dtype=np.float32)  # one value, or one per channel (last axis)
    std = np.asarray(norm["std"], dtype=np.float32)
    x = (np.asarray(raw, dtype=np.float32) * np.float32(norm["scale"]) - mean) / std
    quantization = metadata["input"]["quantization"]
    dtype = np.dtype(metadata["input"]["dtype"])
    if not quantization:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(x / quantization["scale"]) + quantization["zero_point"]
    return np.clip(q, info.min, info.max).astype(dtype)


def _signature(path: Path) -> dict:
    from ai_edge_litert.interpreter import Interpreter  # lazy: LiteRT loads a native library

    signatures = Interpreter(model_path=str(path)).get_signature_list()
    if not signatures:
        return {}
    key, names = next(iter(signatures.items()))
    return {"key": key, "inputs": list(names["inputs"]), "outputs": list(names["outputs"])}


def _layout(sample_shape: list[int]) -> str:
    return {3: "NHWC (batch, height, width, channels)",
            2: "NTF (batch, time steps, features)"}.get(len(sample_shape), "batch first")


def _zip_folder(folder: Path, zip_path: Path) -> None:
    temporary = zip_path.parent / f".{zip_path.name}.tmp"
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(f"{folder.name}/{path.name}", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    os.replace(temporary, zip_path)


def _readme(metadata: dict) -> str:
    model, inp, out, norm = (metadata["model"], metadata["input"], metadata["output"],
                             metadata["normalization"])
    signature = metadata["signature"] or {"key": "serving_default", "inputs": ["input"],
                                          "outputs": ["output"]}
    in_name, out_name = signature["inputs"][0], signature["outputs"][0]
    quantized_in = inp["quantization"] is not None
    quantized_out = out["quantization"] is not None
    shape = ", ".join(str(size) for size in norm["raw_sample_shape"])
    elements = int(np.prod(norm["raw_sample_shape"]))
    classes = len(metadata["labels"]["class_names"])
    per_channel = isinstance(norm["mean"], list) or isinstance(norm["std"], list)
    channels = int(norm["raw_sample_shape"][-1]) if norm["raw_sample_shape"] else 1
    normalized = ("(v * SCALE - MEAN[i % CHANNELS]) / STD[i % CHANNELS]" if per_channel
                  else "(v * SCALE - MEAN) / STD")
    loop = "for ((i, v) in raw.withIndex())" if per_channel else "for (v in raw)"
    kotlin_input = (
        f"""    val q = inputQuantization  // scale {inp['quantization']['scale']!r}, zero point {inp['quantization']['zero_point']}
    val input = ByteBuffer.allocateDirect({elements}).order(ByteOrder.nativeOrder())
    {loop} input.put((Math.round(({normalized}) / q.scale) + q.zeroPoint)
        .coerceIn(-128, 127).toByte())"""
        if quantized_in else
        f"""    val input = ByteBuffer.allocateDirect({elements} * 4).order(ByteOrder.nativeOrder())
    {loop} input.putFloat({normalized})"""
    )
    kotlin_constants = _kotlin_constants(norm, per_channel, channels)
    raw_range = norm.get("raw_range")
    raw_note = (f" Raw values seen in the data: {raw_range[0]:g} to {raw_range[1]:g}."
                if raw_range else "")
    if norm.get("none"):
        preprocessing_text = (f"**Preprocessing**: none. The model takes raw samples of shape "
                              f"({{shape}}) as they are (it scales its own input, or was trained on "
                              f"raw values).{raw_note}")
    else:
        preprocessing_text = (f"**Preprocessing**, exactly as in training: `x = (raw * "
                              f"{norm['scale']!r} - {norm['mean']!r}) / {norm['std']!r}`"
                              + (" (mean and std per channel, the last axis)" if per_channel else "")
                              + " for every value of a raw sample of shape ({shape})"
                              + f".{raw_note}")
    source_note = f" Input contract from {norm['source']}." if norm.get("source") else ""
    kotlin_output = (
        f"""    val output = ByteBuffer.allocateDirect({classes}).order(ByteOrder.nativeOrder())
    // ... after running: probability[i] = (output.get(i) - {out['quantization']['zero_point']}) * {out['quantization']['scale']!r}f"""
        if quantized_out else
        f"""    val output = ByteBuffer.allocateDirect({classes} * 4).order(ByteOrder.nativeOrder())"""
    )
    input_note = (f"int8, quantized with scale {inp['quantization']['scale']!r} and zero point "
                  f"{inp['quantization']['zero_point']}" if quantized_in else inp["dtype"])
    return f"""# {model['name']} — mobile bundle

| file | what |
| --- | --- |
| `{model['file']}` | the TFLite model ({model['precision']}, {model['bytes']:,} bytes) |
| `labels.txt` | the {classes} class names, in output order |
| `metadata.json` | input / output shape, dtype and quantization; normalization; class order |

**Input** `{in_name}` (signature `{signature['key']}`): shape `{inp['shape']}` ({inp['layout']}; -1 is
the batch), {input_note}. **Output** `{out_name}`: shape `{out['shape']}`, {out['dtype']}
{"(dequantize with the output scale and zero point)" if quantized_out else ""}: one probability per label.

{preprocessing_text.format(shape=shape)}{source_note}{" Then `q = round(x / scale) + zero_point`, clipped to int8." if quantized_in else ""}

## Android (Kotlin, LiteRT)

```kotlin
// build.gradle.kts: implementation("com.google.ai.edge.litert:litert:1.0.1")
import org.tensorflow.lite.Interpreter
import java.nio.ByteBuffer
import java.nio.ByteOrder

{kotlin_constants}

fun classify(context: android.content.Context, raw: FloatArray): String {{
    val model = context.assets.open("{model['file']}").readBytes()
    val buffer = ByteBuffer.allocateDirect(model.size).order(ByteOrder.nativeOrder()).put(model)
    val interpreter = Interpreter(buffer)
    val labels = context.assets.open("labels.txt").bufferedReader().readLines()
    val inputQuantization = interpreter.getInputTensor(0).quantizationParams()
{kotlin_input}
{kotlin_output}
    interpreter.runSignature(mapOf("{in_name}" to input), mapOf("{out_name}" to output), "{signature['key']}")
    output.rewind()
    val scores = FloatArray({classes}) {{ {"(output.get().toInt() - " + str(out['quantization']['zero_point']) + ") * " + repr(out['quantization']['scale']) + "f" if quantized_out else "output.getFloat()"} }}
    return labels[scores.indices.maxBy {{ scores[it] }}]
}}
```

## Python (LiteRT)

```python
import json
import numpy as np
from ai_edge_litert.interpreter import Interpreter

metadata = json.load(open("metadata.json"))
norm, inp, out = metadata["normalization"], metadata["input"], metadata["output"]
interpreter = Interpreter(model_path="{model['file']}")
run = interpreter.get_signature_runner("{signature['key']}")

def classify(raw):  # raw: array of shape (N, {shape})
    x = (np.asarray(raw, np.float32) * norm["scale"] - np.float32(norm["mean"])) / np.float32(norm["std"])
    if inp["quantization"]:
        q = inp["quantization"]
        x = np.clip(np.round(x / q["scale"]) + q["zero_point"], -128, 127).astype(inp["dtype"])
    y = run(**{{"{in_name}": x}})["{out_name}"]
    if out["quantization"]:
        q = out["quantization"]
        y = (y.astype(np.float32) - q["zero_point"]) * q["scale"]
    return [metadata["labels"]["class_names"][i] for i in y.argmax(axis=1)]
```
"""


def _kotlin_constants(norm: dict, per_channel: bool, channels: int) -> str:
    if not per_channel:
        return (f"const val SCALE = {norm['scale']!r}f\nconst val MEAN = {norm['mean']!r}f\n"
                f"const val STD = {norm['std']!r}f")

    def array(value):
        values = value if isinstance(value, list) else [value] * channels
        return "floatArrayOf(" + ", ".join(f"{v!r}f" for v in values) + ")"

    return (f"const val SCALE = {norm['scale']!r}f\nconst val CHANNELS = {channels}\n"
            f"val MEAN = {array(norm['mean'])}\nval STD = {array(norm['std'])}")
