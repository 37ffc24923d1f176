"""MNIST and Fashion-MNIST, found on disk (nothing is downloaded).

Each looks, in order, in ``data_dir`` (the files directly in it, or in a sub-folder named after
the dataset), then in the search folders: for Fashion-MNIST the Debian package folder
(``apt-get install dataset-fashion-mnist``) and the Keras cache
``~/.keras/datasets/fashion-mnist/``; for MNIST the Keras cache ``~/.keras/datasets/``
(``mnist.npz``). In a folder, the four IDX files (gzipped or not) win over a Keras .npz.
Both use the official 60000/10000 train/test split. IDX file names are the same for both
datasets, so a folder holding them directly is read as whichever dataset was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekit.data.idx import read_idx, read_keras_npz
from edgekit.data.sources import DATASETS, RawSplits
from edgekit.errors import DataError

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE_DIR = Path("~/.keras/datasets")

# Split key -> IDX file name without ".gz"; the same names for MNIST and Fashion-MNIST.
IDX_FILE_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_GZ_LIST = ", ".join(f"{name}.gz" for name in IDX_FILE_NAMES.values())


@dataclass(frozen=True)
class MnistFamilyMember:
    """What differs between MNIST and Fashion-MNIST."""

    name: str
    title: str
    class_names: tuple[str, ...]
    subfolders: tuple[str, ...]
    npz_names: tuple[str, ...]
    flip: bool
    install_hints: tuple[str, ...]

    def default_search_dirs(self) -> list[Path]:
        cache = KERAS_CACHE_DIR.expanduser()
        if self.name == "fashion_mnist":
            return [DEBIAN_FASHION_MNIST_DIR, cache / "fashion-mnist"]
        return [cache, cache / "mnist"]


FASHION_MNIST = MnistFamilyMember(
    name="fashion_mnist",
    title="Fashion-MNIST",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    subfolders=("fashion-mnist", "fashion_mnist"),
    npz_names=("fashion-mnist.npz", "fashion_mnist.npz"),
    flip=True,  # a mirrored shirt is still a shirt
    install_hints=(
        "run `apt-get install dataset-fashion-mnist`",
        f"pass --data-dir DIR holding the four IDX .gz files ({_IDX_GZ_LIST}) or a Keras "
        "fashion_mnist.npz",
        "put the four .gz files in ~/.keras/datasets/fashion-mnist/",
    ),
)

MNIST = MnistFamilyMember(
    name="mnist",
    title="MNIST",
    class_names=tuple(str(digit) for digit in range(10)),
    subfolders=("mnist",),
    npz_names=("mnist.npz",),
    flip=False,  # a mirrored 7 is not a 7
    install_hints=(
        f"pass --data-dir DIR holding the four IDX .gz files ({_IDX_GZ_LIST}) or a Keras mnist.npz",
        "put mnist.npz in ~/.keras/datasets/",
    ),
)


def _idx_files_in(folder: Path) -> dict[str, Path]:
    """The IDX files present in ``folder``, the .gz preferred over the plain file."""
    found = {}
    for key, base in IDX_FILE_NAMES.items():
        for candidate in (folder / f"{base}.gz", folder / base):
            if candidate.is_file():
                found[key] = candidate
                break
    return found


def _files_in(folder: Path, member: MnistFamilyMember) -> dict[str, Path] | Path | None:
    """Four IDX paths, one .npz path, or None when ``folder`` holds neither."""
    if not folder.is_dir():
        return None
    idx_files = _idx_files_in(folder)
    if len(idx_files) == len(IDX_FILE_NAMES):
        return idx_files
    for npz_name in member.npz_names:
        if (folder / npz_name).is_file():
            return folder / npz_name
    if idx_files:
        missing = [f"{IDX_FILE_NAMES[key]}(.gz)" for key in IDX_FILE_NAMES if key not in idx_files]
        raise DataError(
            f"{folder} holds only part of {member.title}: {', '.join(missing)} missing; "
            "expected all four IDX files; copy the missing ones next to the others"
        )
    return None


def locate(
    member: MnistFamilyMember, data_dir: str | Path | None, search_dirs: Sequence[Path] | None
) -> dict[str, Path] | Path:
    """Find the dataset's files, trying ``data_dir`` first.

    Args:
        member: :data:`FASHION_MNIST` or :data:`MNIST`.
        data_dir: A user folder, or None.
        search_dirs: Folders tried after ``data_dir``; None for the defaults
            (Debian package folder, Keras cache). Tests pass their own.

    Returns:
        The four IDX paths by split key, or the path of a Keras .npz.

    Raises:
        DataError: If ``data_dir`` does not exist, a folder holds only some of the IDX files,
            or no folder holds the dataset (the message lists every way to get it).
    """
    candidates: list[Path] = []
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise DataError(
                f"data directory {data_dir} does not exist or is not a folder; expected a folder "
                f"holding {member.title}; pass an existing folder to --data-dir"
            )
        candidates += [data_dir] + [data_dir / sub for sub in member.subfolders]
    candidates += list(member.default_search_dirs() if search_dirs is None else search_dirs)
    for folder in candidates:
        found = _files_in(folder, member)
        if found is not None:
            return found
    searched = ", ".join(str(folder) for folder in candidates) or "no folders"
    raise DataError(
        f"{member.title} not found (searched: {searched}); expected the four IDX files or a Keras "
        f".npz; to fix: {'; or '.join(member.install_hints)}"
    )


def _check_split(images: np.ndarray, labels: np.ndarray, split: str, where: str) -> None:
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{where}: {split} images {images.shape} and labels {labels.shape} do not match; "
            "expected images (N, H, W) and labels (N,) with the same N; check the files are a set"
        )
    if len(labels) and labels.max() > 9:
        raise DataError(
            f"{where}: {split} labels go up to {int(labels.max())}; expected 0..9; "
            "check the label files are MNIST-format labels"
        )


def load_mnist_family_member(
    member: MnistFamilyMember,
    data_dir: str | Path | None = None,
    search_dirs: Sequence[Path] | None = None,
) -> RawSplits:
    """Load MNIST or Fashion-MNIST from the first folder that holds it.

    Args:
        member: :data:`FASHION_MNIST` or :data:`MNIST`.
        data_dir: A user folder tried first, or None.
        search_dirs: Folders tried next; None for the defaults.

    Returns:
        uint8 images ``(N, H, W, 1)`` (28x28 for the real data), scale ``1/255``.

    Raises:
        DataError: If the files cannot be found or are malformed.
    """
    found = locate(member, data_dir, search_dirs)
    if isinstance(found, Path):
        x_train, y_train, x_test, y_test = read_keras_npz(found)
        where = str(found)
    else:
        x_train, y_train, x_test, y_test = (read_idx(found[key]) for key in IDX_FILE_NAMES)
        where = str(found["x_train"].parent)
    _check_split(x_train, y_train, "train", where)
    _check_split(x_test, y_test, "test", where)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{where}: train images are {x_train.shape[1:]} but test images {x_test.shape[1:]}; "
            "expected one image size; check the files are a set"
        )
    return RawSplits(
        x_train=x_train[..., np.newaxis],
        y_train=y_train.astype(np.int64),
        x_test=x_test[..., np.newaxis],
        y_test=y_test.astype(np.int64),
        class_names=list(member.class_names),
        scale=1.0 / 255.0,
        source=where,
        kind="image",
        augmentable={"flip": member.flip},
    )


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(
    data_dir: str | Path | None = None, search_dirs: Sequence[Path] | None = None
) -> RawSplits:
    """Fashion-MNIST (Zalando, MIT): 60000/10000 grey 28x28 clothing images, 10 classes."""
    return load_mnist_family_member(FASHION_MNIST, data_dir, search_dirs)


@DATASETS.register("mnist")
def load_mnist(
    data_dir: str | Path | None = None, search_dirs: Sequence[Path] | None = None
) -> RawSplits:
    """MNIST: 60000/10000 grey 28x28 handwritten digits, 10 classes."""
    return load_mnist_family_member(MNIST, data_dir, search_dirs)
