"""The peers `infodisent bench faithfulness` compares with: pytorch-grad-cam (Grad-CAM,
Grad-CAM++, Score-CAM, EigenCAM) and Captum (Occlusion, Integrated Gradients), each run on the
PyTorch module of the same model, on the very network inputs infodisent preprocessed, for the
classes infodisent chose. Writes one map per image and method (pixels of the network input, the
larger the more evidence) and the module's logits, so infodisent scores every method with one
implementation; prints one JSON line with the seconds each method took.

Usage: python faithfulness_peers.py MODEL INPUTS OUT METHODS THREADS BATCH
  MODEL:   efficientnet-lite0:<state_dict.pth> (also lite1, lite2)
  INPUTS:  safetensors of f32 tensors: `inputs` [n, 3, S, S], `targets` [n] (class indices)
           and optionally `fc_weight` [C, D], `fc_bias` [C]: a linear classifier on
           average-pooled features that replaces the model's own (a probe trained on the
           user's classes)
  OUT:     safetensors written with `logits` [n, C] and `map/<method>` [n, S, S]
  METHODS: comma-separated: grad-cam, grad-cam++, score-cam, eigen-cam, occlusion,
           integrated-gradients
"""
import json
import sys
import time

import numpy as np
import torch
from safetensors.numpy import load_file, save_file


class Split(torch.nn.Module):
    """The model with its last feature map exposed as a module (`feature`), the layer the
    CAM methods hook: infodisent reads the same map."""

    def __init__(self, net, fc):
        super().__init__()
        self.net, self.feature, self.fc = net, torch.nn.Identity(), fc

    def forward(self, x):
        features = self.feature(self.net.extract_features(x))
        return self.fc(features.mean(dim=(2, 3)))


def build(spec, tensors):
    name, weights = spec.split(":", 1)
    if not name.startswith("efficientnet-lite"):
        raise SystemExit(f"unknown model `{name}`: efficientnet-lite0/1/2 are supported")
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(name)
    net.load_state_dict(torch.load(weights, map_location="cpu"), strict=True)
    fc = net._fc
    if "fc_weight" in tensors:
        w, b = tensors["fc_weight"], tensors["fc_bias"]
        fc = torch.nn.Linear(w.shape[1], w.shape[0])
        fc.weight.data, fc.bias.data = torch.from_numpy(w), torch.from_numpy(b)
    return Split(net, fc).eval()


def cam_method(name, model):
    import pytorch_grad_cam as pgc

    kind = {
        "grad-cam": pgc.GradCAM,
        "grad-cam++": pgc.GradCAMPlusPlus,
        "score-cam": pgc.ScoreCAM,
        "eigen-cam": pgc.EigenCAM,
    }[name]
    cam = kind(model=model, target_layers=[model.feature])
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    def explain(x, targets):
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])

    return explain


def captum_method(name, model):
    from captum.attr import IntegratedGradients, Occlusion

    if name == "occlusion":
        occlusion = Occlusion(model)

        def explain(x, targets):
            a = occlusion.attribute(x, target=targets, sliding_window_shapes=(3, 16, 16),
                                    strides=(3, 8, 8), baselines=0.0)
            return a.sum(dim=1).detach().numpy()
    else:
        ig = IntegratedGradients(model)

        def explain(x, targets):
            a = ig.attribute(x, target=targets, baselines=0.0, n_steps=32,
                             internal_batch_size=32)
            return a.sum(dim=1).detach().numpy()

    return explain


def main():
    spec, inputs, out, methods = sys.argv[1:5]
    threads, batch = int(sys.argv[5]), int(sys.argv[6])
    torch.set_num_threads(threads)
    tensors = load_file(inputs)
    x_all = torch.from_numpy(tensors["inputs"])
    targets_all = torch.from_numpy(tensors["targets"]).long()
    model = build(spec, tensors)
    with torch.inference_mode():
        logits = torch.cat([model(x) for x in x_all.split(batch)]).numpy()
    result = {"logits": np.ascontiguousarray(logits, dtype=np.float32)}
    seconds = {}
    for name in [m for m in methods.split(",") if m]:
        explain = (captum_method if name in ("occlusion", "integrated-gradients")
                   else cam_method)(name, model)
        explain(x_all[:1], targets_all[:1])  # warm-up: allocator and kernels
        started = time.perf_counter()
        maps = [explain(x, t) for x, t in zip(x_all.split(batch), targets_all.split(batch))]
        seconds[name] = time.perf_counter() - started
        result[f"map/{name}"] = np.ascontiguousarray(np.concatenate(maps), dtype=np.float32)
    save_file(result, out)
    print(json.dumps({
        "seconds": seconds,
        "images": int(x_all.shape[0]),
        "threads": threads,
        "batch": batch,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
