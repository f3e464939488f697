"""Fixtures shared by the Python package's tests: the CLI built by `cargo test`, and a cache of
real photos that the CLI extracted through Lite0 with a head trained on it."""

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


