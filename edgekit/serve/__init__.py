"""The serve stage: a Triton Inference Server on edgekit's model repository, and deploys to it.

``serve(...)`` starts the server (:mod:`edgekit.serve.tritonserver`; its log is read by
:mod:`edgekit.serve.server_log`, the binary found by :mod:`edgekit.serve.installation`);
``deploy_triton(...)`` adds a model version (:mod:`edgekit.serve.deploy`, fitted to the model's
config by :mod:`edgekit.serve.reconcile`) and has a running server load it
(:mod:`edgekit.serve.reload`). The client is :class:`edgekit.runtimes.triton_client.TritonClient`.
Importing this package starts nothing and loads neither TensorFlow nor tritonclient.
"""

from edgekit.errors import InferenceError, RepositoryError, ServeError
from edgekit.serve.deploy import DeployResult, deploy_triton
from edgekit.serve.tritonserver import ServeConfig, TritonServer, serve

__all__ = ["DeployResult", "InferenceError", "RepositoryError", "ServeConfig", "ServeError", "TritonServer",
           "deploy_triton", "serve"]
