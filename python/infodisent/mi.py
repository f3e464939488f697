"""The mutual-information decomposition of a representation into total, decision-related and
redundant information, drawn as maps: ``infodisent mi train`` and ``infodisent mi explain``.

    run = infodisent.mi.train(cache, out="runs/fm/mi", classifier="runs/fm/probe")
    maps = infodisent.mi.explain("runs/fm/mi", items=[0, 1], files=["photo.jpg"])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from . import _infodisent as _core
from ._infodisent import Cache

PathLike = str | os.PathLike[str]


def train(cache: Cache | PathLike, out: PathLike, classifier: PathLike = "original", **options: Any) -> dict[str, Any]:
    """Trains the mask and critic against ``classifier`` (``"original"``: the model's own, when
    its classes are the dataset's; else a linear probe's run folder), as ``mi train --json``.
    Keywords: epochs, batch, lr, mask_lr, seed, sparsity, max_items, eval_items, resume,
    progress."""
    if not isinstance(cache, Cache):
        cache = Cache(cache)
    return _core.mi_train(cache, os.fspath(out), os.fspath(classifier), **options)


def explain(
    run: PathLike,
    items: Sequence[int] = (),
    files: Sequence[PathLike] = (),
    cache: PathLike | None = None,
    split: str | None = None,
    out: PathLike | None = None,
) -> list[dict[str, Any]]:
    """The three maps of cached ``items`` (of ``split``, default test) and of image ``files``,
    drawn into ``out`` (default ``<run>/explanations``), as ``mi explain --json``."""
    return _core.mi_explain(run, list(items), list(files), cache, split, out)
