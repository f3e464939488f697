"""What calling infodisent from Python costs against the CLI, in one run on the same images:
extraction (Lite0 over a folder of generated PNGs, model load included on both sides) and
explanation (N image files explained, each figure drawn and written as PNG with its JSON, as
`infodisent explain --out` does, the run and backbone loaded on both sides). Each side runs REPEATS times, alternating; the best is kept.
Prints one JSON object and a table.

Usage: python python_vs_cli.py [--images N] [--repeats R] [--bin PATH]
  (run with the interpreter infodisent is installed in; PATH defaults to target/release/infodisent)
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import infodisent

REPO = Path(__file__).resolve().parents[2]


def cpu_name() -> str:
    """The CPU's model name and the vector units that decide kernel speed."""
    name, flags = platform.processor(), set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    units = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
    return f"{name} ({', '.join(units)})"


def write_images(root: Path, n: int) -> list[Path]:
    """n seeded 96 × 96 PNGs in two class folders (dark and light noise)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        cls = ("dark", "light")[i % 2]
        folder = root / "data" / cls
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(rng.normal(60 + 120 * (i % 2), 40, (96, 96, 3)), 0, 255).astype(np.uint8)
        out = folder / f"{i:05}.png"
        Image.fromarray(pixels).save(out)
        paths.append(out)
    return paths


def timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--explain", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bin", default=str(REPO / "target/release/infodisent"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="infodisent-bench-"))
    try:
        paths = write_images(work, args.images)
        data = work / "data"
        env = {**os.environ}

        def cli(*a: str) -> None:
            subprocess.run([args.bin, *a, "-q"], check=True, stdout=subprocess.DEVNULL, env=env)

        def py_extract(i: int) -> None:
            infodisent.Backbone("efficientnet-lite0").extract(data, work / f"py-{i}", progress=False)

        ext = {"cli": [], "python": []}
        for i in range(args.repeats):
            ext["cli"].append(timed(lambda: cli("extract", "--model", "efficientnet-lite0", "--data", str(data),
                                                "--cache", str(work / f"cli-{i}"))))
            ext["python"].append(timed(lambda: py_extract(i)))
        n = len(paths)
        cache = infodisent.Cache(work / "py-0")
        head = infodisent.train(cache, work / "head", epochs=2, progress=False)
        files = [str(p) for p in paths[: args.explain]]
        cli("prototypes", "--head", str(work / "head"), "--render", "0")

        def py_explain(out: Path) -> None:
            # From nothing, as the CLI starts: open the run, load the backbone, explain, write.
            head = infodisent.Head.load(work / "head")
            out.mkdir()
            for e, f in zip(head.explain(files), files):
                stem = Path(f).stem
                (out / f"{stem}.png").write_bytes(e.png())
                (out / f"{stem}.json").write_text(e.to_json())

        exp = {"cli": [], "python": []}
        for i in range(args.repeats):
            exp["cli"].append(timed(lambda: cli("explain", "--head", str(work / "head"), "--out",
                                                str(work / f"cli-x{i}"), *files)))
            exp["python"].append(timed(lambda: py_explain(work / f"py-x{i}")))
        result = {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "extract_images": n,
            "explain_images": len(files),
            "extract_images_per_s": {k: n / min(v) for k, v in ext.items()},
            "explain_images_per_s": {k: len(files) / min(v) for k, v in exp.items()},
            "python_cost_pct": {
                "extract": 100.0 * (min(ext["python"]) / min(ext["cli"]) - 1.0),
                "explain": 100.0 * (min(exp["python"]) / min(exp["cli"]) - 1.0),
            },
        }
        print(json.dumps(result))
        print(f"\n{result['cpu']}, {result['cores']} cores", file=sys.stderr)
        for what in ("extract", "explain"):
            r = result[f"{what}_images_per_s"]
            print(f"{what:8} CLI {r['cli']:7.1f} img/s   Python {r['python']:7.1f} img/s   "
                  f"Python costs {result['python_cost_pct'][what]:+.1f} %", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
