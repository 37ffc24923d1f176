"""edgekit models are Keras 2 (tf-keras), even when the user's environment did not ask for it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def _run_python(code: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_build_model_returns_tf_keras_model_without_tf_use_legacy_keras_set():
    result = _run_python(
        """
        import edgekit
        import edgekit.models
        m = edgekit.models.build_model("cnn", (8, 8, 1), 10)
        import tensorflow as tf
        import tf_keras
        assert isinstance(m, tf_keras.Model), type(m)
        assert tf.keras.Model is tf_keras.Model, tf.keras
        assert edgekit.build_model is edgekit.models.build_model
        print("keras2-ok")
        """
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "keras2-ok" in result.stdout


def test_importing_edgekit_models_does_not_import_tensorflow():
    result = _run_python(
        """
        import sys
        import edgekit.models
        edgekit.models.model_names(), edgekit.models.model_options("cnn")
        print(sorted(name for name in ("tensorflow", "tf_keras") if name in sys.modules))
        """
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
