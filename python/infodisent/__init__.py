"""infodisent: explain pretrained image classifiers with prototypical parts.

The same library as the ``infodisent`` command line, from Python::

    import infodisent
    bb = infodisent.Backbone("efficientnet-lite0")         # or an ONNX file, with preset="timm", ...
    cache = bb.extract("data/fm", cache="runs/fm/cache")  # the CLI's cache, resumable
    head = infodisent.train(cache, out="runs/fm/head")    # the CLI's default recipe
    e = infodisent.Head.load("runs/fm/head").explain("photo.jpg")
    e.predicted, e.class_name, e.contributions, e.heatmap("positive")
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _infodisent as _core
from ._infodisent import (
    Backbone,
    Cache,
    CacheError,
    Explanation,
    InfoDisentError,
    InvalidInputError,
    ModelError,
    __version__,
)

__all__ = [
    "Backbone",
    "Cache",
    "CacheError",
    "Explanation",
    "Head",
    "InfoDisentError",
    "InvalidInputError",
    "ModelError",
    "train",
    "__version__",
]


def _image_input(image: Any, i: int) -> Any:
    """A path, or an [H, W, 3] uint8 array: what the compiled module reads."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    module = type(image).__module__
    if module.startswith("PIL."):
        return np.asarray(image.convert("RGB"))
    if module.startswith("torch"):
        t = image.detach().cpu()
        if t.dim() != 3 or t.shape[0] != 3:
            raise InvalidInputError(
                f"image {i}: a tensor of shape {tuple(t.shape)}; expected [3, H, W] RGB in [0, 1]"
            )
        if t.is_floating_point():
            if bool(t.isnan().any()):
                raise InvalidInputError(f"image {i}: the tensor holds NaN")
            if float(t.min()) < 0.0 or float(t.max()) > 1.0:
                raise InvalidInputError(
                    f"image {i}: values from {float(t.min()):.3g} to {float(t.max()):.3g}; "
                    "a float tensor is RGB in [0, 1]"
                )
            t = (t * 255.0).round()
        return t.to(dtype=__import__("torch").uint8).permute(1, 2, 0).contiguous().numpy()
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise InvalidInputError(
                f"image {i}: an array of shape {image.shape}; expected [H, W, 3]"
            )
        if image.dtype == np.uint8:
            return np.ascontiguousarray(image)
        if np.issubdtype(image.dtype, np.floating):
            if np.isnan(image).any():
                raise InvalidInputError(f"image {i}: the array holds NaN")
            if image.min() < 0.0 or image.max() > 1.0:
                raise InvalidInputError(
                    f"image {i}: values from {image.min():.3g} to {image.max():.3g}; "
                    "a float array is RGB in [0, 1]"
                )
            return np.ascontiguousarray(np.round(image * 255.0).astype(np.uint8))
        raise InvalidInputError(f"image {i}: arrays of {image.dtype} are not images")
    raise InvalidInputError(
        f"image {i}: {type(image).__name__} is not an image; give a path, a PIL image, "
        "an [H, W, 3] numpy array or a [3, H, W] torch tensor"
    )


class Head:
    """A trained InfoDisent head with its cache, prototypes and backbone."""

    def __init__(self, core: Any) -> None:
        self._core = core

    @classmethod
    def load(
        cls,
        run: str | os.PathLike[str],
        cache: str | os.PathLike[str] | None = None,
        probe: str | os.PathLike[str] | None = None,
        model: str | None = None,
        threads: int | None = None,
        k: int = 5,
    ) -> "Head":
        """Opens a run folder made by ``train``; it finds its cache and model itself."""
        fs = lambda p: None if p is None else os.fspath(p)  # noqa: E731
        return cls(_core.Head.load(os.fspath(run), fs(cache), fs(probe), model, threads, k))

    @property
    def run(self) -> str:
        """The run folder."""
        return os.fspath(self._core.run)

    @property
    def classes(self) -> list[str]:
        """The class names."""
        return self._core.classes

    @property
    def channels(self) -> int:
        """Channels D of the feature map."""
        return self._core.channels

    @property
    def cache(self) -> Cache:
        """The feature cache the head reads."""
        return self._core.cache

    def explain(self, images: Any, class_: int | None = None) -> Any:
        """Explains one image or a batch: paths, PIL images, [H, W, 3] numpy arrays or
        [3, H, W] torch tensors (a [N, 3, H, W] tensor is a batch). Returns one Explanation,
        or a list for a list or batch."""
        single = not isinstance(images, (list, tuple)) and not (
            type(images).__module__.startswith("torch") and images.dim() == 4
        )
        batch = [images] if single else list(images)
        inputs = [_image_input(image, i) for i, image in enumerate(batch)]
        out = self._core.explain_images(inputs, class_)
        return out[0] if single else out

    def explain_item(self, item: int, split: str | None = None, class_: int | None = None) -> Explanation:
        """Explains a cached image from its stored features (no backbone run)."""
        return self._core.explain_item(item, split, class_)

    def __repr__(self) -> str:
        return repr(self._core)


def train(cache: Cache | str | os.PathLike[str], out: str | os.PathLike[str], **options: Any) -> Head:
    """Trains a head with the CLI's default recipe; keywords override it (kind, target,
    epochs, batch, lr, seed, val_fraction, keep_top, resume)."""
    if not isinstance(cache, Cache):
        cache = Cache(os.fspath(cache))
    return Head(_core.train(cache, os.fspath(out), **options))
