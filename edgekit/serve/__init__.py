"""The serve stage: a Triton Inference Server on edgekit's model repository, and its client.

``serve(...)`` starts the server (see :mod:`edgekit.serve.tritonserver`); ``TritonClient``
queries it (see :mod:`edgekit.runtimes.triton_client`); ``deploy_triton(...)`` adds a model version and
has a running server load it (see :mod:`edgekit.serve.deploy`). Importing this package starts
nothing and loads neither TensorFlow nor tritonclient.
"""

from edgekit.serve.deploy import DeployResult, deploy_triton
from edgekit.errors import InferenceError, RepositoryError, ServeError
from edgekit.serve.tritonserver import ServeConfig, TritonServer, serve

__all__ = ["DeployResult", "InferenceError", "RepositoryError", "ServeConfig", "ServeError", "TritonServer",
           "deploy_triton", "serve"]
