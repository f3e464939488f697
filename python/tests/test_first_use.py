"""A user's first call: from a folder outside the checkout, with an empty user cache, the
built-in Lite0 downloads its pinned weights and class names itself and explains a photo."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, infodisent
bb = infodisent.Backbone("efficientnet-lite0")
cache = bb.extract("data", cache="cache")
head = infodisent.train(cache, out="head", epochs=3)
e = head.explain(sys.argv[1])
print(e.class_name, e.heatmap("positive").shape)
"""


def test_built_in_weights_download_on_first_use_outside_the_checkout(tmp_path):
    photos = sorted((REPO / ".assets/photos/imagenet").iterdir())[:8]
    for i, p in enumerate(photos):
        folder = tmp_path / "data" / ("alpha" if i % 2 else "beta")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folder / p.name)
    env = {k: v for k, v in os.environ.items() if k not in ("INFODISENT_ASSETS", "INFODISENT_OFFLINE")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")
    env["INFODISENT_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(photos[0])], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    name, _, shape = out.stdout.strip().partition(" (")
    assert name in {"alpha", "beta"} and shape.endswith(")"), out.stdout
    assets = tmp_path / "user-cache/infodisent/assets"
    assert (assets / "weights/efficientnet-lite0.pth").stat().st_size > 10_000_000
    assert len((assets / "imagenet/labels.txt").read_text().splitlines()) == 1000


def test_offline_machines_get_an_error_that_says_what_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "INFODISENT_ASSETS"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")
    env["INFODISENT_OFFLINE"] = "1"
    code = "import infodisent; infodisent.Backbone('efficientnet-lite0')"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "weights/efficientnet-lite0.pth" in out.stderr and "INFODISENT_OFFLINE" in out.stderr, out.stderr
