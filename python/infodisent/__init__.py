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

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import _infodisent as _core
from . import mi
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



def _onnxruntime_library() -> str | None:
    """libonnxruntime.so of this interpreter's ``onnxruntime`` package, found without importing
    it (so its own copy of the runtime is never loaded beside ours)."""
    spec = importlib.util.find_spec("onnxruntime")
    for location in (spec.submodule_search_locations or []) if spec else []:
        libs = sorted((Path(location) / "capi").glob("libonnxruntime.so*"))
        if libs:
            return os.fspath(libs[0])
    return None


_ort = _onnxruntime_library()
if _ort is not None:
    _core._use_onnxruntime(_ort)

__all__ = [
    "Backbone",
    "Cache",
    "CacheError",
    "Explanation",
    "Head",
    "InfoDisentError",
    "InvalidInputError",
    "ModelError",
    "eval",
    "fetch_assets",
    "metrics",
    "mi",
    "prototypes",
    "report",
    "train",
    "train_probe",
    "__version__",
]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _preprocessed(batch: Any) -> np.ndarray:
    """An already normalised ``[N, 3, S, S]`` batch (numpy or torch) as float32 numpy."""
    if _is_torch(batch):
        batch = batch.detach().cpu().float().numpy()
    array = np.asarray(batch)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or not np.issubdtype(array.dtype, np.floating):
        raise InvalidInputError(
            f"preprocessed input of shape {array.shape} and type {array.dtype}; "
            "expected a float [N, 3, S, S] batch"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _image_input(image: Any, i: int) -> Any:
    """A path, or an [H, W, 3] uint8 array: what the compiled module reads."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    module = type(image).__module__
    if module.startswith("PIL."):
        return np.asarray(image.convert("RGB"))
    if _is_torch(image):
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

    def __init__(self, core: _core.Head) -> None:
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
        return cls(_core.Head.load(run, cache, probe, model, threads, k))

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

    def explain(self, images: Any, class_: int | None = None, preprocessed: bool = False) -> Any:
        """Explains one image or a batch: paths, PIL images, [H, W, 3] numpy arrays or
        [3, H, W] torch tensors (a [N, 3, H, W] tensor is a batch). Returns one Explanation,
        or a list for a list or batch. With ``preprocessed=True``, ``images`` is a float
        [N, 3, S, S] batch already normalised as the cache's preprocessing does."""
        if preprocessed:
            return self._core.explain_inputs(_preprocessed(images), class_)
        single = not isinstance(images, (list, tuple)) and not (
            (_is_torch(images) and images.dim() == 4)
            or (isinstance(images, np.ndarray) and images.ndim == 4)
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
    """Trains an InfoDisent head with the CLI's default recipe; keywords override it (target,
    epochs, batch, lr, seed, val_fraction, keep_top, decorrelation, rotation_init ("identity" or
    "principal"), trace_rv, config (a TOML file, as ``--config``), resume, progress)."""
    if options.get("kind", "infodisent") != "infodisent":
        raise InvalidInputError("train makes InfoDisent heads; train_probe makes the linear probe")
    if not isinstance(cache, Cache):
        cache = Cache(os.fspath(cache))
    core = _core.train(cache, os.fspath(out), **options)
    assert core is not None
    return Head(core)


def train_probe(cache: Cache | str | os.PathLike[str], out: str | os.PathLike[str], **options: Any) -> str:
    """Trains the linear-probe baseline (``train --kind linear-probe``) with the same schedule
    and hold-out as ``train``; returns its run folder, the ``probe=`` of metrics and report."""
    if not isinstance(cache, Cache):
        cache = Cache(os.fspath(cache))
    _core.train(cache, os.fspath(out), kind="linear-probe", **options)
    return os.fspath(out)


PathLike = str | os.PathLike[str]


def _head(head: Head | PathLike, cache: Cache | PathLike | None = None) -> Head:
    """A Head, opening a run folder when given one (with ``cache`` when given)."""
    if isinstance(head, Head):
        return head
    cache_path = cache.path if isinstance(cache, Cache) else cache
    return Head.load(head, cache=cache_path)


def report(
    cache_or_head: Cache | Head | PathLike,
    head: Head | PathLike | None = None,
    *,
    out: PathLike,
    **options: Any,
) -> dict[str, Any]:
    """Writes the static HTML report into ``out``, as ``infodisent report``: called as
    ``report(head, out=...)`` or ``report(cache, head, out=...)``. Keywords: probe, mi,
    metrics (a JSON file), split, sample, progress. Returns what ``--json`` prints."""
    if head is None:
        h = _head(cache_or_head)  # type: ignore[arg-type]
    else:
        h = _head(head, cache_or_head)  # type: ignore[arg-type]
    return _core.report(h._core, os.fspath(out), **options)


def metrics(head: Head | PathLike, cache: Cache | PathLike | None = None, **options: Any) -> dict[str, Any]:
    """The paper's metrics of a head, as ``infodisent metrics --json``. Keywords: probe, split,
    deletion (images for deletion/insertion; 0 skips the backbone), steps, rv_images,
    rv_pairs, annotations, out, progress."""
    return _core.metrics(_head(head, cache)._core, **options)


def prototypes(head: Head | PathLike, cache: Cache | PathLike | None = None, **options: Any) -> dict[str, Any]:
    """Finds and saves each channel's prototypes, as ``infodisent prototypes --json``.
    Keywords: k, split, out, render, progress."""
    return _core.prototypes(_head(head, cache)._core, **options)


def eval(  # noqa: A001 - the CLI's name for it
    heads: Head | PathLike | list[Head | PathLike],
    cache: Cache | PathLike | None = None,
    split: str | None = None,
) -> list[dict[str, Any]]:
    """Accuracy, per-class accuracy and confusion of each head and of the original
    classifier, as ``infodisent eval --json``."""
    listed = heads if isinstance(heads, list) else [heads]
    runs = [h.run if isinstance(h, Head) else os.fspath(h) for h in listed]
    cache_path = cache.path if isinstance(cache, Cache) else (None if cache is None else os.fspath(cache))
    return _core.eval(runs, cache_path, split)


def fetch_assets(
    dest: PathLike | None = None,
    models: tuple[str, ...] | None = None,
    fashion_mnist: bool = True,
    progress: bool = True,
) -> Path:
    """Downloads, pinned and checksum-verified, what the built-in backbones need (their
    ImageNet weights and class names) and the Fashion-MNIST dataset (``"fashion-mnist"`` as a
    data folder) into ``dest``: by default ``$INFODISENT_ASSETS``, else
    ``~/.cache/infodisent/assets``, where the library looks for them. Not needed before first
    use (a missing built-in file is downloaded then); for a machine that will run offline.
    Files already there are kept. Returns the folder. ``models`` defaults to every built-in."""
    folder = _core.fetch_assets(
        None if dest is None else os.fspath(dest),
        None if models is None else list(models),
        fashion_mnist,
        progress,
    )
    return Path(folder)
