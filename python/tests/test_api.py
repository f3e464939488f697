"""The Python package as a user meets it: installed by pip, over a cache of real photos that the
CLI extracted through Lite0. Head.explain on paths, PIL images and numpy arrays must give what
`infodisent explain --json` gives for the same files; bad input raises the documented exception.
"""

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

import infodisent

from conftest import assert_same, cli, cli_explanations


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


def test_extract_in_parts_fills_the_cache_one_call_writes(fixture, tmp_path):
    bb = infodisent.Backbone("efficientnet-lite0")
    # Each split is one shard here, which part 1 of 2 owns: part 0 writes nothing.
    cache = bb.extract(fixture["root"] / "data", tmp_path / "parts", part="0/2", progress=False)
    with pytest.raises(infodisent.CacheError, match="part 1/2"):
        cache.features("train")
    cache = bb.extract(fixture["root"] / "data", tmp_path / "parts", part="1/2", progress=False)
    cli_cache = infodisent.Cache(fixture["cache"])
    for split in cli_cache.splits:
        assert np.array_equal(cache.features(split), cli_cache.features(split))
    with pytest.raises(infodisent.InvalidInputError, match="JOB_COMPLETION_INDEX"):
        bb.extract(fixture["root"] / "data", tmp_path / "k8s", part="auto", progress=False)


def test_a_named_layout_is_read_as_named(fixture, tmp_path):
    bb = infodisent.Backbone("efficientnet-lite0")
    with pytest.raises(infodisent.InfoDisentError, match="unknown dataset layout `cubb`"):
        bb.extract(fixture["root"] / "data", tmp_path / "a", layout="cubb", progress=False)
    # A class-folder tree named as CUB is refused for lacking CUB's files, not guessed at.
    with pytest.raises(infodisent.InvalidInputError, match="images.txt"):
        bb.extract(fixture["root"] / "data", tmp_path / "b", layout="cub", progress=False)


def test_openvino_engine_gives_the_f32_features_of_onnx_runtime(fixture, tmp_path):
    bb = infodisent.Backbone("efficientnet-lite0", engine="openvino", precision="f32")
    cache = bb.extract(fixture["root"] / "data", tmp_path / "ov", progress=False)
    cli_cache = infodisent.Cache(fixture["cache"])
    for split in cli_cache.splits:
        ours, theirs = cache.features(split), cli_cache.features(split)
        assert np.linalg.norm(ours - theirs) <= 1e-3 * np.linalg.norm(theirs)
    with pytest.raises(infodisent.InvalidInputError, match="engine"):
        infodisent.Backbone("efficientnet-lite0", engine="tensorrt")


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


SCHEMA = Path(__file__).resolve().parents[2] / "docs/book/src/explanation.schema.json"


def test_explanations_follow_the_published_json_schema(fixture, head):
    """The schema the guide publishes is what the CLI prints and Python returns, field for field
    (it forbids fields it does not name)."""
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    pngs = fixture["pngs"]
    documents = cli_explanations(fixture, pngs)
    documents += [e.to_dict() for e in head.explain(pngs)] + [json.loads(head.explain_item(0).to_json())]
    for document in documents:
        validator.validate(document)
    broken = dict(documents[0], surprise=1)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


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


def test_metrics_eval_prototypes_and_report_answer_what_the_cli_prints(fixture, head, tmp_path):
    run = str(fixture["root"] / "head")
    small = dict(deletion=2, steps=4, rv_images=8, rv_pairs=20)
    got = infodisent.metrics(head, progress=False, **small)
    want = json.loads(cli("metrics", "--json", "--head", run, "--deletion", "2", "--steps", "4",
                          "--rv-images", "8", "--rv-pairs", "20"))
    assert got["split"] == want["split"] == "test"
    assert got["accuracy"] == want["accuracy"]
    assert got["channels_for_95"] == want["channels_for_95"]
    assert got["rv"] == want["rv"]
    assert [f["method"] for f in got["faithfulness"]] == [f["method"] for f in want["faithfulness"]]
    for g, w in zip(got["faithfulness"], want["faithfulness"]):
        assert g["deletion_auc"] == pytest.approx(w["deletion_auc"], abs=1e-6)

    rows = infodisent.eval(head)
    assert rows == json.loads(cli("eval", "--json", "--head", run))
    assert rows[0]["name"] == "head (InfoDisent)" and 0.0 <= rows[0]["top1"] <= 1.0

    protos = infodisent.prototypes(run, out=tmp_path / "protos", render=1, progress=False)
    cli("prototypes", "--head", run, "--out", str(tmp_path / "cli-protos"), "--render", "1", "-q")
    mine = json.loads((tmp_path / "protos" / "prototypes.json").read_text())
    theirs = json.loads((tmp_path / "cli-protos" / "prototypes.json").read_text())
    assert mine == theirs and protos["channels"] == 1280 and protos["images_written"] > 0

    summary = infodisent.report(fixture["cache"], run, out=tmp_path / "report", sample=2, progress=False)
    index = tmp_path / "report" / "index.html"
    assert summary["index"] == str(index) and index.is_file() and summary["pages"] > 1
    assert "InfoDisent" in index.read_text()


def test_mi_train_and_explain_answer_what_the_cli_prints(fixture, tmp_path):
    probe = infodisent.train_probe(fixture["cache"], tmp_path / "probe", epochs=3, progress=False)
    summary = infodisent.mi.train(fixture["cache"], tmp_path / "mi", classifier=probe, epochs=2, progress=False)
    assert summary["epochs"] == 2 and summary["metrics"][-1]["epoch"] == 2
    png = fixture["pngs"][0]
    got = infodisent.mi.explain(tmp_path / "mi", items=[0], files=[png], out=tmp_path / "py-maps")
    want = json.loads(cli("mi", "explain", "--json", "--mi", str(tmp_path / "mi"), "--item", "0",
                          "--out", str(tmp_path / "cli-maps"), str(png)))
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        assert g["source"] == w["source"]
        for peak in ("total_peak", "decision_peak", "redundant_peak"):
            assert g[peak] == w[peak]
        assert g["masked_prediction_name"] == w["masked_prediction_name"]
    assert (tmp_path / "py-maps").is_dir()
    with pytest.raises(infodisent.InvalidInputError, match="nothing to explain"):
        infodisent.mi.explain(tmp_path / "mi")


def test_disentangling_options_reach_the_recipe_the_cli_writes(fixture, tmp_path):
    options = dict(epochs=2, rotation_init="principal", decorrelation=1.0, trace_rv=8)
    infodisent.train(fixture["cache"], tmp_path / "py", progress=False, **options)
    cli("train", "--cache", str(fixture["cache"]), "--out", str(tmp_path / "cli"), "--epochs", "2",
        "--rotation-init", "principal", "--decorrelation", "1", "--trace-rv", "8", "-q")
    configs = [json.loads((tmp_path / run / "config.json").read_text()) for run in ("py", "cli")]
    assert configs[0] == configs[1]
    assert configs[0]["rotation_init"] == "principal" and configs[0]["decorrelation"] == 1.0
    for run in ("py", "cli"):
        epochs = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        assert len(epochs) == 2 and all(-1.0 <= e["rv"]["pooled"] <= 1.0 for e in epochs)
    with pytest.raises(infodisent.InvalidInputError, match="rotation_init"):
        infodisent.train(fixture["cache"], tmp_path / "bad", rotation_init="random", progress=False)
