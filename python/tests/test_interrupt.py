"""Ctrl-C during a long call: `extract` stops after the batch under way with KeyboardInterrupt,
keeps every shard it finished, and the same call again resumes, ending with the cache an
uninterrupted run writes."""

import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

import infodisent

EXTRACT = """
import sys, infodisent
bb = infodisent.Backbone("efficientnet-lite0", threads=2)
bb.extract(sys.argv[1], sys.argv[2], shard_size=32, batch=16, progress=False)
"""


def test_ctrl_c_during_extract_leaves_a_cache_that_resumes(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("dark", "light"):
        folder = tmp_path / "data" / c
        folder.mkdir(parents=True)
        for i in range(160):
            base = 60 if c == "dark" else 180
            pixels = np.clip(rng.normal(base, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03}.png")
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", EXTRACT, str(tmp_path / "data"), str(cache)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(cache.glob("train/shard-*.safetensors")):
        assert proc.poll() is None, f"extract ended before it was interrupted:\n{proc.stderr.read()}"
        assert time.monotonic() < deadline, "no shard written in 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err, err
    kept = {p.name: p.stat().st_mtime_ns for p in cache.glob("train/shard-*.safetensors")}
    assert 0 < len(kept) < 8, f"{len(kept)} of 8 training shards were written before the stop"

    bb = infodisent.Backbone("efficientnet-lite0", threads=2)
    resumed = bb.extract(tmp_path / "data", cache, shard_size=32, batch=16, progress=False)
    for name, mtime in kept.items():
        assert (cache / "train" / name).stat().st_mtime_ns == mtime, f"{name} was written again"
    fresh = bb.extract(tmp_path / "data", tmp_path / "fresh", shard_size=32, batch=16, progress=False)
    for split in fresh.splits:
        assert resumed.paths(split) == fresh.paths(split)
        assert np.array_equal(resumed.features(split), fresh.features(split))
