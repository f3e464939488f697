"""``Backbone.from_torch``: a PyTorch ``nn.Module`` exported once to ONNX, into a folder keyed by
its content (architecture, weights, input side, torch version), and loaded like any ONNX model.

torch is imported only here, when the call is made (``pip install infodisent[torch]``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Joins the content key: a change to how models are exported makes new folders.
EXPORT_RECIPE = 1


def export_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    """Where exports live: ``cache_dir``, ``$INFODISENT_HOME/torch``, else the user's cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    home = os.environ.get("INFODISENT_HOME")
    if home:
        return Path(home) / "torch"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "infodisent" / "torch"


def timm_config(model: Any) -> dict[str, Any]:
    """The preprocessing a timm model was trained with (empty for other models)."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, dict) or "input_size" not in cfg:
        return {}
    out: dict[str, Any] = {"input_size": int(cfg["input_size"][-1])}
    if cfg.get("crop_pct") is not None:
        out["crop_pct"] = float(cfg["crop_pct"])
    if cfg.get("interpolation") in ("bilinear", "bicubic", "nearest"):
        out["interpolation"] = cfg["interpolation"]
    if cfg.get("mean") is not None and cfg.get("std") is not None:
        out["mean"] = [float(v) for v in cfg["mean"]]
        out["std"] = [float(v) for v in cfg["std"]]
    return out


def content_key(model: Any, input_size: int, dynamo: bool) -> str:
    """A digest of everything the exported file depends on."""
    import torch

    h = hashlib.sha256()
    cls = type(model)
    meta = [EXPORT_RECIPE, torch.__version__, cls.__module__, cls.__qualname__, repr(model), input_size, dynamo]
    h.update(json.dumps(meta).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def export(model: Any, path: Path, input_size: int, dynamo: bool) -> float:
    """Writes ``model`` (in eval mode, batch axis dynamic) to ``path``; returns the seconds."""
    import time

    import torch

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(2, 3, input_size, input_size, device=device)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with torch.no_grad():
            # The batch axis stays free: torch.export's AUTO lets a model that fixes it say so.
            batch = (
                {"dynamic_shapes": ({0: torch.export.Dim.AUTO},)}
                if dynamo
                else {"dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}}, "opset_version": 17}
            )
            torch.onnx.export(
                model, (x,), str(path), input_names=["input"], output_names=["logits"], dynamo=dynamo, **batch
            )
    finally:
        model.train(was_training)
    return time.perf_counter() - start


def exported_model(
    model: Any,
    input_size: int,
    cache_dir: str | os.PathLike[str] | None,
    dynamo: bool,
) -> Path:
    """The ONNX file of ``model``: reused when its content key has one, else exported into a
    temporary folder that is renamed into place whole (so a killed export leaves nothing)."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "Backbone.from_torch needs PyTorch: pip install 'infodisent[torch]'"
        ) from e
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"from_torch takes a torch.nn.Module, not {type(model).__name__}")
    root = export_root(cache_dir)
    key = content_key(model, input_size, dynamo)
    folder = root / key
    # The file is named after the class, so caches and explanations say which model made them.
    name = f"{type(model).__name__.lower()}.onnx"
    if (folder / "export.json").is_file():
        return folder / name
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        seconds = export(model, tmp / name, input_size, dynamo)
        record = {
            "model": f"{type(model).__module__}.{type(model).__qualname__}",
            "input_size": input_size,
            "torch": torch.__version__,
            "exporter": "dynamo" if dynamo else "torchscript",
            "export_seconds": round(seconds, 2),
        }
        (tmp / "export.json").write_text(json.dumps(record, indent=1))
        try:
            tmp.rename(folder)
        except OSError:
            # Another process exported the same model first: its folder is as good as ours.
            if not (folder / "export.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / name


def plan(
    model: Any,
    preset: str | None,
    input_size: int | None,
    options: dict[str, Any],
    cache_dir: str | os.PathLike[str] | None,
    dynamo: bool,
) -> dict[str, Any]:
    """The exported file and the preprocessing to load it with: a timm model's own
    ``pretrained_cfg`` unless the caller says otherwise, torchvision's convention for others."""
    timm = timm_config(model)
    size = input_size or timm.get("input_size", 224)
    chosen = {k: v for k, v in options.items() if v is not None}
    if timm and preset in (None, "timm"):
        chosen = {**{k: v for k, v in timm.items() if k != "input_size"}, **chosen}
    return {
        "model": os.fspath(exported_model(model, size, cache_dir, dynamo)),
        "preset": preset or ("timm" if timm else "torchvision"),
        **chosen,
    }
