"""Image folders: one subfolder per class (the layout of torchvision's ImageFolder).

    <root>/train/<class>/*.png|jpg|...     and     <root>/test/<class>/...   (or val/)

or, without train/test folders, ``<root>/<class>/...`` split by a fixed stratified split
(``test_fraction``, PCG64(``split_seed``)). Class indices follow the sorted train class names.
Images are decoded with Pillow when it is importable (PNG, JPEG, BMP, GIF, WebP, TIFF), else
with matplotlib (PNG only), converted to RGB (``channels=3``, default) or grey (``channels=1``)
and resized to the square ``resolution`` (aspect ratio not kept). Images stay on disk and are
decoded on access; normalisation statistics come from up to 1000 training images.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from layerscope.datasets.base import (
    DatasetSplits,
    augmentation_defaults,
    build_splits,
    channel_stats,
    stratified_split,
)
from layerscope.datasets.transforms import Pipeline
from layerscope.errors import DatasetFormatError, DatasetNotFoundError, OptionError, fix, toml_lines
from layerscope.registry import DATASETS

__all__ = ["FileSource", "image_folder", "read_image"]

PIL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: Normalisation statistics of folders are estimated from this many training images at most.
FOLDER_STAT_IMAGES = 1000


def _has_pil() -> bool:
    return importlib.util.find_spec("PIL") is not None


def read_image(path: str | Path, channels: int = 3) -> torch.Tensor:
    """One image file as float (channels, H, W) in [0, 1].

    Example:
        >>> import tempfile, pathlib, matplotlib.image
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.png"
        >>> matplotlib.image.imsave(path, np.zeros((4, 5)), cmap="gray")
        >>> tuple(read_image(path).shape), tuple(read_image(path, channels=1).shape)
        ((3, 4, 5), (1, 4, 5))
    """
    path = Path(path)
    if _has_pil():
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB" if channels == 3 else "L"), dtype=np.float32)
        except (UnidentifiedImageError, OSError) as error:
            raise DatasetFormatError(f"cannot decode image {path} ({error})") from error
        array = array / 255.0
    else:
        import matplotlib.image

        if path.suffix.lower() != ".png":
            raise DatasetFormatError(
                f"{path}: without Pillow only PNG images can be read; pip install pillow"
            )
        array = np.asarray(matplotlib.image.imread(path), dtype=np.float32)  # PNG: in [0, 1]
        if array.ndim == 3:
            array = array[..., :3]  # drop alpha
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    if tensor.shape[0] != channels:
        from layerscope.datasets.transforms import convert_channels

        tensor = convert_channels(tensor, channels)
    return tensor


class FileSource:
    """Images on disk, decoded on access; ``labels`` is (N,) int64.

    Example:
        >>> src = FileSource([], [], channels=3)
        >>> len(src)
        0
    """

    def __init__(self, paths, labels, *, channels: int = 3) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.channels = channels

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> torch.Tensor:
        return read_image(self.paths[index], self.channels)


def _list_classes(folder: Path, extensions) -> dict[str, list[Path]]:
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(f for f in sub.rglob("*") if f.suffix.lower() in extensions and f.is_file())
        if files:
            classes[sub.name] = files
    return classes


def _flatten(classes: dict[str, list[Path]], index: dict[str, int]) -> tuple[list[Path], list[int]]:
    paths = [p for name in classes for p in classes[name]]
    labels = [index[name] for name in classes for _ in classes[name]]
    return paths, labels


def _sources(root: Path, channels: int, extensions, layout: str, test_fraction, split_seed):
    """Train and test sources of an image folder, and the class names: from train/ and test/
    (or val/) subfolders when there are both, else a stratified split of the class folders."""
    split_dirs = [
        root / "train",
        next((root / n for n in ("test", "val") if (root / n).is_dir()), None),
    ]
    if split_dirs[0].is_dir() and split_dirs[1] is not None:
        train_classes = _list_classes(split_dirs[0], extensions)
        test_classes = _list_classes(split_dirs[1], extensions)
        stray = sorted(set(test_classes) - set(train_classes))
        if stray:
            raise DatasetFormatError(f"{split_dirs[1]} has classes missing from train: {stray}")
        names = list(train_classes)
        index = {n: i for i, n in enumerate(names)}
        train = FileSource(*_flatten(train_classes, index), channels=channels)
        test = FileSource(*_flatten(test_classes, index), channels=channels)
        return train, test, names
    classes = _list_classes(root, extensions)
    names = list(classes)
    paths, labels = _flatten(classes, {n: i for i, n in enumerate(names)})
    if len(names) < 2 or len(paths) < 2:
        raise DatasetNotFoundError(
            f"{root} holds {len(paths)} images in {len(names)} class folders; expected {layout} "
            f"({', '.join(extensions)})"
        )
    train_idx, test_idx = stratified_split(labels, float(test_fraction), seed=split_seed)
    train = FileSource(
        [paths[i] for i in train_idx], [labels[i] for i in train_idx], channels=channels
    )
    test = FileSource(
        [paths[i] for i in test_idx], [labels[i] for i in test_idx], channels=channels
    )
    return train, test, names


@DATASETS.register("folder")
def image_folder(
    *,
    root=None,
    resolution: int | None = 32,
    channels: int | None = None,
    augment: bool = True,
    crop_padding: int | None = None,
    flip: bool | None = None,
    canvas: int | None = None,
    normalize: bool = True,
    seed: int = 0,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> DatasetSplits:
    """A folder of class subfolders (``root`` is that folder); see the module docstring.

    Augmentation (train only): random crop with padding resolution // 8 and horizontal flip.
    """
    extensions = PIL_EXTENSIONS if _has_pil() else (".png",)
    layout = "<root>/train/<class>/*.png and <root>/test/<class>/*.png, or <root>/<class>/*.png"
    if root is None or not Path(root).is_dir():
        raise DatasetNotFoundError(
            f"image folder {root!r} does not exist. Give a folder laid out as {layout} "
            f"({', '.join(extensions)}): "
            + fix(python="root='FOLDER'", config=toml_lines("dataset_kwargs.root", "FOLDER"))
        )
    if resolution is None:
        raise OptionError(
            "image folders need a resolution: their images may differ in size, and a batch "
            "needs one size. Pass resolution=<pixels>."
        )
    root = Path(root)
    train, test, names = _sources(root, channels or 3, extensions, layout, test_fraction,
                                  split_seed)  # fmt: skip
    if len(train) == 0 or len(test) == 0:
        raise DatasetNotFoundError(f"{root}: no images in train or test; expected {layout}")
    mean = std = None
    if normalize:
        mean, std = channel_stats(
            train, Pipeline(resolution=resolution), max_images=FOLDER_STAT_IMAGES
        )
    padding, flip = augmentation_defaults(resolution, crop_padding, flip, flip_default=True)
    return build_splits(
        "folder",
        train,
        test,
        num_classes=len(names),
        class_names=names,
        resolution=resolution,
        augment=augment,
        crop_padding=padding,
        flip=flip,
        canvas=canvas,
        normalize=normalize,
        mean=mean,
        std=std,
        seed=seed,
    )
