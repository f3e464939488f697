"""PyTorch users: a torchvision ResNet-18 and a timm ViT (seeded random weights) go through
`Backbone.from_torch` to features equal to the CLI's cache of the same images and to PyTorch's
own feature map; torch tensors and preprocessed batches explain as the CLI explains the files.
"""

import json
import time

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image

import infodisent

from conftest import assert_same, cli, cli_explanations

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def squares(fixture, tmp_path_factory):
    """Twelve photos as 224 × 224 PNGs in two classes: with crop_pct 1 the network sees these
    very pixels, so PyTorch can be fed the same input."""
    root = tmp_path_factory.mktemp("squares")
    photos = sorted((fixture["root"] / "data").glob("*/*"))[:12]
    for i, p in enumerate(photos):
        folder = root / ("alpha" if i % 2 else "beta")
        folder.mkdir(exist_ok=True)
        Image.open(p).convert("RGB").resize((224, 224), Image.BICUBIC).save(folder / f"{p.stem}.png")
    return root


def torch_input(paths, mean, std):
    x = [(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0 - mean) / std for p in paths]
    return torch.from_numpy(np.stack(x).transpose(0, 3, 1, 2).copy())


def check_against_cli_and_torch(model, squares, tmp_path, features, mean, std, cli_flags, tol):
    exports = tmp_path / "exports"
    start = time.perf_counter()
    bb = infodisent.Backbone.from_torch(model, crop_pct=1.0, cache_dir=exports, threads=2)
    first = time.perf_counter() - start
    again = infodisent.Backbone.from_torch(model, crop_pct=1.0, cache_dir=exports, threads=2)
    assert again.model == bb.model and len(list(exports.iterdir())) == 1, "the export is reused"
    assert bb.input_size == 224 and first > 0
    cache = bb.extract(squares, tmp_path / "py-cache", progress=False)
    cli("extract", "--model", bb.model, *cli_flags, "--crop-pct", "1", "--data", str(squares),
        "--cache", str(tmp_path / "cli-cache"), "-q")
    cli_cache = infodisent.Cache(tmp_path / "cli-cache")
    for split in cache.splits:
        assert cache.paths(split) == cli_cache.paths(split)
        assert np.array_equal(cache.features(split), cli_cache.features(split))
    paths = [squares / p for p in cache.paths("train")]
    with torch.no_grad():
        want = features(model.eval(), torch_input(paths, mean, std)).numpy()
    got = cache.features("train")
    assert got.shape == want.shape
    err = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert err < tol, f"features differ from PyTorch's by {err:.2e} (relative L2)"
    return bb


def test_torchvision_resnet18(squares, tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    layer4 = lambda m, x: m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))  # noqa: E731
    bb = check_against_cli_and_torch(model, squares, tmp_path, layer4, MEAN, STD, ["--preset", "torchvision"], 1e-3)
    assert json.loads(bb.preprocess)["normalize"] == "imagenet"


def test_timm_vit_brings_its_own_preprocessing(squares, tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    cfg = model.pretrained_cfg
    mean, std = np.array(cfg["mean"], dtype=np.float32), np.array(cfg["std"], dtype=np.float32)

    def tokens(m, x):
        t = m.forward_features(x)[:, 1:]
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], 14, 14)

    rgb = lambda v: ",".join(str(float(x)) for x in v)  # noqa: E731
    flags = ["--preset", "timm", "--interpolation", cfg["interpolation"], "--mean", rgb(cfg["mean"]), "--std", rgb(cfg["std"])]
    bb = check_against_cli_and_torch(model, squares, tmp_path, tokens, mean, std, flags, 1e-3)
    pre = json.loads(bb.preprocess)
    assert pre["preset"] == "timm" and pre["interpolation"] == cfg["interpolation"]
    assert pre["normalize"]["mean-std"]["mean"] == pytest.approx(list(cfg["mean"]))


def test_torch_tensors_and_preprocessed_batches_explain_as_the_cli(fixture, head):
    pngs = fixture["pngs"]
    expected = cli_explanations(fixture, pngs)
    tensors = [torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1) / 255.0
               for p in pngs]
    for got, want in zip(head.explain(tensors), expected):
        assert_same(got, want)
    # Lite0 squashes the whole image to 224 and maps x to (x - 127) / 128.
    views = [np.asarray(Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32)
             for p in pngs]
    batch = torch.from_numpy((np.stack(views).transpose(0, 3, 1, 2) - 127.0) / 128.0)
    pre = head.explain(batch, preprocessed=True)
    assert len(pre) == len(pngs)
    assert pre[0].heatmap("positive").shape == (224, 224)
    assert pre[0].figure().shape[2] == 3
    direct = head.explain([Image.fromarray(v.astype(np.uint8)) for v in views])
    for p, d in zip(pre, direct):
        assert p.predicted == d.predicted
        np.testing.assert_allclose(p.logits, d.logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(infodisent.InvalidInputError, match="NaN"):
        head.explain(torch.full((3, 32, 32), float("nan")))
    with pytest.raises(infodisent.InvalidInputError, match=r"\[N, 3, 224, 224\]"):
        head.explain(torch.zeros(2, 3, 100, 100), preprocessed=True)
    with pytest.raises(infodisent.InvalidInputError, match="NaN"):
        head.explain(torch.full((1, 3, 224, 224), float("nan")), preprocessed=True)


def test_from_torch_refuses_what_is_not_a_module():
    with pytest.raises(TypeError, match="nn.Module"):
        infodisent.Backbone.from_torch("resnet18")
