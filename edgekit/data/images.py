"""``images:DIR``: a folder with one sub-folder of images per class.

* Class names are the sub-folder names, sorted; hidden entries (``.name``) are skipped.
* Every file whose extension Pillow knows (png, jpg, bmp, gif, tiff, webp, ...) is read; other
  files (a README, a .csv) are ignored. A GIF contributes its first frame.
* Samples are greyscale ``(H, W, 1)`` when every image is single-channel, else RGB ``(H, W, 3)``
  (alpha is dropped; grey images are repeated into 3 channels).
* Every image is resized (bilinear, aspect ratio not kept) to the most common size in the
  folder; on a tie the larger size wins. So mixed sizes load, at the price of stretching outliers.
* 20% of each class goes to a fixed, seeded test split; pixel scale is ``1/255``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edgekit.data.sources import SPEC_FORMS, RawSplits
from edgekit.data.splits import TEST_FRACTION, TEST_SPLIT_SEED, split_indices
from edgekit.errors import DataError

_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def _to_8bit(image):
    """The image as 8-bit "L" or "RGB" (the two modes edgekit stacks)."""
    # lazy: Pillow is needed only for image files
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # Pillow's own I->L conversion clips at 255; rescale 16-bit grey instead.
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max() > 255:
            values = values * (255.0 / 65535.0)
        return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), mode="L")
    if image.mode in _GREY_MODES:
        return image.convert("L")
    rgb = image.convert("RGB")
    if image.mode == "P":  # a palette of greys (common in GIFs) is still a grey image
        pixels = np.asarray(rgb)
        if (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all():
            return rgb.convert("L")
    return rgb


def _read_image(path: Path):
    # lazy: Pillow is needed only for image files
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return _to_8bit(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(
            f"cannot read image {path} ({error}); expected an image file Pillow can open; "
            "fix or delete the file"
        ) from error


def _class_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(
            f"image folder {folder} does not exist or is not a folder; expected a folder with one "
            "sub-folder of images per class; check the path after 'images:'"
        )
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = ", ".join(p.name for p in classes) or "none"
        raise DataError(
            f"image folder {folder} has {len(classes)} class sub-folder(s) ({found}); expected at "
            "least 2, one per class; put each class's images in its own sub-folder"
        )
    return classes


def _image_files(class_folder: Path, extensions: set[str]) -> list[Path]:
    files = sorted(p for p in class_folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in extensions]
    if not images:
        raise DataError(
            f"class folder {class_folder} holds no images ({len(files)} other file(s)); expected "
            "at least one .png, .jpg, .bmp, .gif or other Pillow image; add images or remove "
            "the folder"
        )
    return images


def most_common_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The (width, height) seen most often; a tie goes to the larger area, then the larger size."""
    counts = Counter(sizes)
    return max(counts, key=lambda size: (counts[size], size[0] * size[1], size))


@SPEC_FORMS.register("images")
def load_image_folder(directory: str | Path) -> RawSplits:
    """Load ``images:DIR``, one sub-folder per class.

    Args:
        directory: The folder holding the class sub-folders.

    Returns:
        uint8 images ``(N, H, W, 1)`` or ``(N, H, W, 3)`` at the most common size.

    Raises:
        DataError: If the folder is missing, has fewer than 2 class folders, a class folder
            holds no images, or an image cannot be read (the message names the file).

    Example:
        >>> raw = load_image_folder("photos")  # photos/cat/*.jpg, photos/dog/*.jpg
    """
    # lazy: Pillow is needed only for image files
    from PIL import Image

    folder = Path(directory).expanduser()
    class_folders = _class_folders(folder)
    extensions = set(Image.registered_extensions())
    images, labels = [], []
    for index, class_folder in enumerate(class_folders):
        for path in _image_files(class_folder, extensions):
            images.append(_read_image(path))
            labels.append(index)
    width, height = most_common_size([image.size for image in images])
    mode = "L" if all(image.mode == "L" for image in images) else "RGB"
    pixels = np.stack([
        np.asarray(image.convert(mode).resize((width, height), Image.Resampling.BILINEAR))
        if image.size != (width, height) else np.asarray(image.convert(mode))
        for image in images
    ])
    if mode == "L":
        pixels = pixels[..., np.newaxis]
    labels = np.asarray(labels, dtype=np.int64)
    train, test = split_indices(labels, TEST_FRACTION, TEST_SPLIT_SEED, "test")
    return RawSplits(
        x_train=pixels[train],
        y_train=labels[train],
        x_test=pixels[test],
        y_test=labels[test],
        class_names=[p.name for p in class_folders],
        scale=1.0 / 255.0,
        source=str(folder.resolve()),
        kind="image",
        augmentable={"flip": True},
    )
