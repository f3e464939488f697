"""Types of the compiled module; `mypy.stubtest` checks them against it (scripts/test-python.sh)."""

from collections.abc import Iterator, Sequence
from os import PathLike
from typing import Any, final

import numpy as np
import numpy.typing as npt

__version__: str

class InfoDisentError(Exception): ...
class ModelError(InfoDisentError): ...
class CacheError(InfoDisentError): ...
class InvalidInputError(InfoDisentError, ValueError): ...

@final
class Backbone:
    def __new__(
        cls,
        model: str,
        preset: str | None = None,
        crop_pct: float | None = None,
        interpolation: str | None = None,
        mean: tuple[float, float, float] | list[float] | None = None,
        std: tuple[float, float, float] | list[float] | None = None,
        feature_node: str | None = None,
        threads: int | None = None,
        engine: str | None = None,
        precision: str | None = None,
    ) -> Backbone: ...
    @staticmethod
    def from_torch(
        model: Any,
        preset: str | None = None,
        input_size: int | None = None,
        crop_pct: float | None = None,
        interpolation: str | None = None,
        mean: tuple[float, float, float] | list[float] | None = None,
        std: tuple[float, float, float] | list[float] | None = None,
        cache_dir: str | PathLike[str] | None = None,
        dynamo: bool = True,
        threads: int | None = None,
        engine: str | None = None,
        precision: str | None = None,
    ) -> Backbone: ...
    @property
    def model(self) -> str: ...
    @property
    def input_size(self) -> int: ...
    @property
    def preprocess(self) -> str: ...
    def extract(
        self,
        data: str | PathLike[str],
        cache: str | PathLike[str],
        test_fraction: float = ...,
        split_seed: int = 0,
        skip_bad: bool = False,
        batch: int = ...,
        limit_per_class: int | None = None,
        overwrite: bool = False,
        shard_size: int = ...,
        progress: bool = True,
        part: str | None = None,
        parts: int | None = None,
        layout: str | None = None,
    ) -> Cache: ...

@final
class Cache:
    def __new__(cls, path: str | PathLike[str]) -> Cache: ...
    @property
    def path(self) -> str: ...
    @property
    def splits(self) -> list[str]: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def feature_shape(self) -> tuple[int, int, int]: ...
    @property
    def model(self) -> str: ...
    def size(self, split: str) -> int: ...
    def paths(self, split: str) -> list[str]: ...
    def features(self, split: str) -> npt.NDArray[np.float32]: ...
    def labels(self, split: str) -> npt.NDArray[np.int64]: ...
    def logits(self, split: str) -> npt.NDArray[np.float32] | None: ...
    def read(
        self, split: str, indices: list[int]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    def batches(self, split: str, batch: int = 256) -> Batches: ...

@final
class Batches:
    def __iter__(self) -> Iterator[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]]: ...
    def __next__(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...

@final
class Head:
    @staticmethod
    def load(
        run: str | PathLike[str],
        cache: str | PathLike[str] | None = None,
        probe: str | PathLike[str] | None = None,
        model: str | None = None,
        threads: int | None = None,
        k: int = 5,
    ) -> Head: ...
    @property
    def run(self) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def channels(self) -> int: ...
    @property
    def cache(self) -> Cache: ...
    def explain_images(self, images: list[Any], class_: int | None = None) -> list[Explanation]: ...
    def explain_inputs(
        self, batch: npt.NDArray[np.float32], class_: int | None = None
    ) -> list[Explanation]: ...
    def explain_item(
        self, item: int, split: str | None = None, class_: int | None = None
    ) -> Explanation: ...

@final
class Explanation:
    @property
    def source(self) -> str: ...
    @property
    def predicted(self) -> int: ...
    @property
    def class_(self) -> int: ...
    @property
    def class_name(self) -> str | None: ...
    @property
    def probability(self) -> float: ...
    @property
    def logits(self) -> npt.NDArray[np.float32]: ...
    @property
    def contributions(self) -> list[dict[str, Any]]: ...
    def heatmap(self, kind: str = "positive", size: str = "image") -> npt.NDArray[np.float32]: ...
    def prototypes(self, channel: int, polarity: str = "positive") -> list[dict[str, Any]]: ...
    def figure(self) -> npt.NDArray[np.uint8]: ...
    def png(self) -> bytes: ...
    def _repr_html_(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...

def train(
    cache: Cache,
    out: str | PathLike[str],
    kind: str = "infodisent",
    target: str = "labels",
    epochs: int | None = None,
    batch: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    val_fraction: float | None = None,
    keep_top: int | None = None,
    decorrelation: float | None = None,
    rotation_init: str | None = None,
    trace_rv: int | None = None,
    config: str | PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Head | None: ...
def metrics(
    head: Head,
    probe: str | PathLike[str] | None = None,
    split: str | None = None,
    deletion: int = 16,
    steps: int = 16,
    rv_images: int = 1024,
    rv_pairs: int = 2000,
    annotations: str | PathLike[str] | None = None,
    out: str | PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]: ...
def eval(
    heads: Sequence[str | PathLike[str]],
    cache: str | PathLike[str] | None = None,
    split: str | None = None,
) -> list[dict[str, Any]]: ...
def prototypes(
    head: Head,
    k: int = 5,
    split: str | None = None,
    out: str | PathLike[str] | None = None,
    render: int = 5,
    progress: bool = True,
) -> dict[str, Any]: ...
def report(
    head: Head,
    out: str | PathLike[str],
    probe: str | PathLike[str] | None = None,
    mi: str | PathLike[str] | None = None,
    metrics: str | PathLike[str] | None = None,
    split: str | None = None,
    sample: int = 24,
    progress: bool = True,
) -> dict[str, Any]: ...
def mi_train(
    cache: Cache,
    out: str | PathLike[str],
    classifier: str = "original",
    epochs: int | None = None,
    batch: int | None = None,
    lr: float | None = None,
    mask_lr: float | None = None,
    seed: int = 0,
    sparsity: float | None = None,
    max_items: int | None = None,
    eval_items: int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]: ...
def mi_explain(
    run: str | PathLike[str],
    items: Sequence[int] = ...,
    files: Sequence[str | PathLike[str]] = ...,
    cache: str | PathLike[str] | None = None,
    split: str | None = None,
    out: str | PathLike[str] | None = None,
) -> list[dict[str, Any]]: ...
def _use_onnxruntime(path: str | PathLike[str]) -> None: ...

def fetch_assets(
    dest: str | None = None,
    models: list[str] | None = None,
    fashion_mnist: bool = True,
    progress: bool = True,
) -> str: ...
