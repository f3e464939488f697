"""The Python package as a user meets it: installed by pip, over a cache of real photos that the
CLI extracted through Lite0. Head.explain on paths, PIL images and numpy arrays must give what
`infodisent explain --json` gives for the same files; bad input raises the documented exception.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import infodisent

BIN = os.environ.get("INFODISENT_BIN", "infodisent")
REPO = Path(__file__).resolve().parents[2]


def cli(*args: str) -> bytes:
    out = subprocess.run([BIN, *args], capture_output=True, env={**os.environ, "INFODISENT_THREADS": "2"})
    assert out.returncode == 0, f"infodisent {' '.join(args)}\n{out.stderr.decode()}"
    return out.stdout


@pytest.fixture(scope="session")
def fixture(tmp_path_factory):
    """The asset photos in two class folders, extracted by the CLI; some copied as PNG, so that
    decoded pixels are identical whichever way they reach the library."""
    root = tmp_path_factory.mktemp("py")
    photos = sorted((REPO / ".assets/photos/imagenet").iterdir())
    assert photos, "run scripts/fetch-assets.sh (scripts/test.sh does)"
    for i, p in enumerate(photos):
        folder = root / "data" / ("alpha" if i < len(photos) // 2 else "beta")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folder / p.name)
    pngs = []
    for p in photos[:3]:
        png = root / (p.stem + ".png")
        Image.open(p).convert("RGB").save(png)
        pngs.append(png)
    cache = root / "cache"
    cli("extract", "--model", "efficientnet-lite0", "--data", str(root / "data"), "--cache", str(cache), "-q")
    return {"root": root, "cache": cache, "pngs": pngs}


@pytest.fixture(scope="session")
def head(fixture):
    return infodisent.train(fixture["cache"], fixture["root"] / "head", epochs=3)


def test_cache_reads_what_extract_wrote(fixture):
    cache = infodisent.Cache(fixture["cache"])
    assert cache.classes == ["alpha", "beta"]
    assert set(cache.splits) == {"train", "test"}
    d, h, w = cache.feature_shape
    assert (d, h, w) == (1280, 7, 7)
    features, labels = cache.features("train"), cache.labels("train")
    assert features.shape == (len(labels), d, h, w) and features.dtype == np.float32
    assert labels.dtype == np.int64 and set(labels.tolist()) == {0, 1}
    assert len(cache.paths("train")) == len(labels)
    logits = cache.logits("train")
    assert logits.shape == (len(labels), 1000)
    streamed = list(cache.batches("train", batch=4))
    assert [len(b[1]) for b in streamed][:-1] == [4] * (len(streamed) - 1)
    assert np.array_equal(np.concatenate([b[0] for b in streamed]), features)
    assert np.array_equal(np.concatenate([b[1] for b in streamed]), labels)


def test_extract_from_python_writes_the_cache_the_cli_writes(fixture, tmp_path):
    bb = infodisent.Backbone("efficientnet-lite0")
    assert bb.input_size == 224
    cache = bb.extract(fixture["root"] / "data", tmp_path / "cache")
    cli_cache = infodisent.Cache(fixture["cache"])
    assert cache.splits == cli_cache.splits and cache.classes == cli_cache.classes
    for split in cache.splits:
        assert cache.paths(split) == cli_cache.paths(split)
        assert np.array_equal(cache.labels(split), cli_cache.labels(split))
        assert np.array_equal(cache.features(split), cli_cache.features(split))
    timm = infodisent.Backbone("efficientnet-lite0", preset="timm", crop_pct=0.95)
    # timm's rule: resize = crop / crop_pct = 224 / 0.95 → 235, bicubic, as `extract --preset timm --crop-pct 0.95`.
    assert json.loads(timm.preprocess) == {
        "crop": 224, "interpolation": "bicubic", "normalize": "imagenet", "preset": "timm", "resize": 235,
    }
    with pytest.raises(infodisent.InvalidInputError, match="preset"):
        infodisent.Backbone("efficientnet-lite0", preset="keras")


def cli_explanations(fixture, files):
    out = cli(
        "explain", "--json", "--cache", str(fixture["cache"]), "--head", str(fixture["root"] / "head"),
        "--out", str(fixture["root"] / "explain-out"), *map(str, files),
    )
    return json.loads(out)["images"]


def assert_same(e, expected):
    assert e.predicted == expected["predicted"]
    assert e.class_name == expected["class_name"]
    np.testing.assert_allclose(e.logits, expected["logits"], rtol=1e-5, atol=1e-5)
    got = e.contributions
    want = [dict(c, sign=1) for c in expected["positive"]] + [dict(c, sign=-1) for c in expected["negative"]]
    assert [c["channel"] for c in got] == [c["channel"] for c in want]
    for g, w in zip(got, want):
        assert g["sign"] == w["sign"]
        assert g["contribution"] == pytest.approx(w["contribution"], rel=1e-5, abs=1e-6)
    for kind, method in [("positive", "infodisent+"), ("negative", "infodisent-")]:
        grid = e.heatmap(kind, size="grid")
        m = expected["heatmaps"][method]
        assert grid.shape == (m["h"], m["w"])
        np.testing.assert_allclose(grid.ravel(), m["values"], rtol=1e-5, atol=1e-6)


def test_explain_on_paths_pil_and_numpy_matches_the_cli(fixture, head):
    pngs = fixture["pngs"]
    expected = cli_explanations(fixture, pngs)
    by_path = head.explain(pngs)
    by_pil = head.explain([Image.open(p) for p in pngs])
    by_array = head.explain([np.asarray(Image.open(p).convert("RGB")) for p in pngs])
    by_float = head.explain([np.asarray(Image.open(p).convert("RGB")) / 255.0 for p in pngs])
    for i, want in enumerate(expected):
        for got in (by_path[i], by_pil[i], by_array[i], by_float[i]):
            assert_same(got, want)
    assert by_path[0].source == str(pngs[0])
    one = head.explain(str(pngs[0]))
    assert isinstance(one, infodisent.Explanation) and one.predicted == expected[0]["predicted"]


def test_heatmaps_prototypes_and_figure(fixture, head):
    png = fixture["pngs"][1]
    e = head.explain(png)
    width, height = Image.open(png).size
    pos = e.heatmap("positive")
    assert pos.shape == (height, width) and pos.dtype == np.float32 and pos.min() >= 0.0
    assert e.heatmap("negative", size="input").shape == (224, 224)
    top = e.contributions[0]["channel"]
    protos = e.prototypes(top)
    assert len(protos) == 5 and protos[0]["score"] >= protos[-1]["score"]
    assert {"path", "label", "cell", "input_box"} <= set(protos[0])
    figure = e.figure()
    assert figure.ndim == 3 and figure.shape[2] == 3 and figure.dtype == np.uint8
    assert e.png()[:8] == b"\x89PNG\r\n\x1a\n"
    html = e._repr_html_()
    assert "data:image/png;base64," in html and e.class_name in html
    assert json.loads(e.to_json())["predicted"] == e.predicted


def test_a_run_folder_alone_finds_its_cache(fixture, head):
    again = infodisent.Head.load(fixture["root"] / "head")
    assert again.classes == ["alpha", "beta"] and again.channels == 1280
    cached = again.explain_item(0)
    assert cached.predicted in (0, 1)


def test_bad_input_raises_the_documented_exceptions(fixture, head, tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such.jpg"):
        head.explain(tmp_path / "no-such.jpg")
    corrupt = tmp_path / "cut.jpg"
    corrupt.write_bytes(fixture["pngs"][0].read_bytes()[:200])
    with pytest.raises(infodisent.InvalidInputError, match="cut.jpg"):
        head.explain(corrupt)
    with pytest.raises(infodisent.InvalidInputError, match="shape"):
        head.explain(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(infodisent.InvalidInputError, match="NaN"):
        head.explain(np.full((8, 8, 3), np.nan))
    with pytest.raises(ValueError):
        head.explain(np.full((8, 8, 3), 2.0))
    with pytest.raises(infodisent.CacheError):
        infodisent.Cache(tmp_path)
    assert issubclass(infodisent.InvalidInputError, infodisent.InfoDisentError)
    assert issubclass(infodisent.ModelError, infodisent.InfoDisentError)
