"""The benchmark stage: latency, throughput, memory, size, accuracy and fidelity of every artifact.

``bench(...)`` measures each artifact of one or more model folders (or the files given) in a
process of its own, on the test split with the manifest's preprocessing, and writes a versioned
JSON, a Markdown table and PNG plots. Importing this package loads no runtime library.

Example:
    >>> from edgekit.bench import bench
    >>> result = bench("models/cnn-digits", batches="1,8", threads="1,2")
    >>> print(result.table())
"""

from edgekit.bench.config import BenchConfig
from edgekit.bench.run import ArtifactsFailedError, BenchResult, GatesFailedError, bench

__all__ = ["ArtifactsFailedError", "BenchConfig", "BenchResult", "GatesFailedError", "bench"]
