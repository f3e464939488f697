"""Exports real torchvision/timm architectures to ONNX with today's exporters, with reference outputs.

Each model is built with seeded random weights (no hub is reachable), exported with the default
(dynamo) exporter and the legacy one, and run in PyTorch on the given photos resized to the model's
input side. What infodisent must reproduce is saved beside each export in `reference.safetensors`:
the input batch, the feature map the method reads ([N, D, h, w]) and the model's
logits. Run by `scripts/export-zoo.sh`; one folder per (model, exporter), skipped when complete.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import timm
from PIL import Image
from safetensors.numpy import save_file


def tokens_to_map(tokens, skip):
    n, t, d = tokens.shape
    side = int(round((t - skip) ** 0.5))
    return tokens[:, skip:].transpose(1, 2).reshape(n, d, side, side)


# name -> (builder, input side, features(model, x) -> [N, D, h, w], family note)
def tv(name, **kw):
    return lambda: getattr(torchvision.models, name)(weights=None, **kw)


def tm(name, **kw):
    return lambda: timm.create_model(name, pretrained=False, **kw)


def tv_vit_tiny():
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=3,
                             hidden_dim=192, mlp_dim=768)


def tv_vit_features(m, x):
    x = m._process_input(x)
    cls = m.class_token.expand(x.shape[0], -1, -1)
    return tokens_to_map(m.encoder(torch.cat([cls, x], dim=1)), 1)


MODELS = {
    "resnet18": (tv("resnet18"), 224,
                 lambda m, x: m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))),
    "densenet121": (tv("densenet121"), 224, lambda m, x: F.relu(m.features(x))),
    "efficientnet_b0": (tv("efficientnet_b0"), 224, lambda m, x: m.features(x)),
    "mobilenet_v3_small": (tv("mobilenet_v3_small"), 224, lambda m, x: m.features(x)),
    "regnet_y_400mf": (tv("regnet_y_400mf"), 224, lambda m, x: m.trunk_output(m.stem(x))),
    "vit_ti16_torchvision": (tv_vit_tiny, 224, tv_vit_features),
    "convnext_atto": (tm("convnext_atto"), 224, lambda m, x: m.head.norm(m.forward_features(x))),
    "vit_tiny_patch16_224": (tm("vit_tiny_patch16_224"), 224,
                             lambda m, x: tokens_to_map(m.forward_features(x), 1)),
    "deit_tiny_distilled_patch16_224": (tm("deit_tiny_distilled_patch16_224"), 224,
                                        lambda m, x: tokens_to_map(m.forward_features(x), 2)),
    "vit_tiny_reg4_gap": (tm("vit_tiny_patch16_224", reg_tokens=4, global_pool="avg", img_size=256), 256,
                          lambda m, x: m.fc_norm(tokens_to_map(m.forward_features(x), 5).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)),
    "swin_tiny_patch4_window7_224": (tm("swin_tiny_patch4_window7_224"), 224,
                                     lambda m, x: m.forward_features(x).permute(0, 3, 1, 2)),
}


def build(name):
    builder, side, features = MODELS[name]
    torch.manual_seed(0)
    model = builder().eval()
    # Some heads start at zero (torchvision's ViT): give every all-zero weight a small random value
    # so logits and features are informative.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and not p.any():
                p.normal_(0.0, 0.02)
    return model, side, features


def load_images(paths, side):
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    batch = []
    for p in paths:
        img = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0
        if img.shape[:2] != (side, side):
            raise SystemExit(f"{p}: expected {side}x{side}, got {img.shape[:2]}")
        batch.append(((img - mean) / std).transpose(2, 0, 1))
    return torch.from_numpy(np.ascontiguousarray(np.stack(batch)))


def write_inputs(photos, side, out_dir):
    """The photos resized (bicubic, PIL) to side x side: the images both runtimes read."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for p in photos:
        dst = os.path.join(out_dir, os.path.splitext(os.path.basename(p))[0] + ".png")
        if not os.path.exists(dst):
            Image.open(p).convert("RGB").resize((side, side), Image.BICUBIC).save(dst + ".tmp.png")
            os.replace(dst + ".tmp.png", dst)
        paths.append(dst)
    return sorted(paths)


# Extra exports: without dynamic axes (the batch size is then baked to that of the example), and
# with the legacy exporter at opset 13 (LayerNorm written out as ops; ViTs need opset 14).
EXTRA = [("resnet18", "dynamo-static"), ("resnet18", "legacy-opset13"),
         ("convnext_atto", "legacy-opset13"), ("swin_tiny_patch4_window7_224", "legacy-opset13")]


def export(model, x, path, exporter):
    kwargs = dict(input_names=["input"], output_names=["logits"])
    if exporter != "dynamo-static":
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    if exporter == "legacy":
        torch.onnx.export(model, (x,), path, dynamo=False, **kwargs)
    elif exporter == "legacy-opset13":
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=13, **kwargs)
    elif exporter == "dynamo-static":
        torch.onnx.export(model, (x[:1],), path, **kwargs)
    else:
        torch.onnx.export(model, (x,), path, **kwargs)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--photos", nargs="+", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--exporters", default="dynamo,legacy")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    jobs = [(n, e) for n in args.models.split(",") for e in args.exporters.split(",")]
    jobs += [(n, e) for n, e in EXTRA if n in args.models.split(",")]
    for name, exporter in jobs:
        folder = os.path.join(args.out, f"{name}-{exporter}")
        done = os.path.join(folder, "export.json")
        if os.path.exists(done):
            continue
        os.makedirs(folder, exist_ok=True)
        model, side, features = build(name)
        images = write_inputs(args.photos, side, os.path.join(args.out, f"images-{side}", "photos"))
        x = load_images(images, side)
        t0 = time.time()
        export(model, x, os.path.join(folder, "model.onnx"), exporter)
        seconds = time.time() - t0
        with torch.no_grad():
            logits = model(x)
            fmap = features(model, x)
        save_file({"input": x.numpy(), "features": fmap.contiguous().numpy(),
                   "logits": logits.numpy()}, os.path.join(folder, "reference.safetensors"))
        record = {"model": name, "exporter": exporter, "side": side,
                  "images": os.path.relpath(os.path.dirname(images[0]), args.out),
                  "torch": torch.__version__, "torchvision": torchvision.__version__,
                  "timm": timm.__version__, "export_seconds": round(seconds, 1),
                  "files": sorted(os.listdir(folder))}
        with open(done + ".tmp", "w") as f:
            json.dump(record, f, indent=1)
        os.replace(done + ".tmp", done)
        print(f"[export-zoo] {name} ({exporter}): {seconds:.1f} s, files {record['files']}",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
