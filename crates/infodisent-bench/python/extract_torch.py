"""The PyTorch reference `infodisent bench extract --torch-python PY` times in the same run: the
same image files decoded with PIL, resized and cropped with torchvision's transforms, and the
backbone's feature map computed in eager mode (inference_mode, channels-last), once with the
decoding in the main process and once with a DataLoader whose workers decode while the model
runs. Prints one JSON line with the best pass of each.

Usage: python extract_torch.py MODEL LIST BATCH THREADS REPEATS
  MODEL: timm:<name> (forward_features) or torchvision:<name> (everything before the pool)
  LIST:  a text file with one image path per line
"""
import json
import sys
import time

import torch
import torchvision
from PIL import Image
from torchvision import transforms


def backbone(spec):
    source, name = spec.split(":", 1)
    if source == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
        return model, model.forward_features
    model = getattr(torchvision.models, name)()
    body = torch.nn.Sequential(*list(model.children())[:-2])
    return model, body


class Files(torch.utils.data.Dataset):
    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(Image.open(self.paths[i]).convert("RGB"))


def main():
    spec, listing = sys.argv[1], sys.argv[2]
    batch, threads, repeats = (int(x) for x in sys.argv[3:6])
    # A sixth argument of 1 also times bf16 autocast, with the better of the two loaders.
    bf16 = len(sys.argv) > 6 and sys.argv[6] == "1"
    torch.set_num_threads(threads)
    paths = [line.strip() for line in open(listing) if line.strip()]
    model, features = backbone(spec)
    model.eval()
    model = model.to(memory_format=torch.channels_last)
    transform = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    data = Files(paths, transform)

    def run(workers, autocast=False):
        loader = torch.utils.data.DataLoader(data, batch_size=batch, num_workers=workers)
        started = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            for x in loader:
                features(x.contiguous(memory_format=torch.channels_last))
        return time.perf_counter() - started

    run(0)  # warm-up: allocator, kernels, file cache
    best = {}
    for workers in (0, threads):
        best[workers] = min(run(workers) for _ in range(repeats))
    result = {}
    if bf16:
        workers = min(best, key=best.get)
        run(workers, autocast=True)  # warm-up of the bf16 kernels
        result["images_per_sec_bf16_autocast"] = len(paths) / min(
            run(workers, autocast=True) for _ in range(repeats))
    print(json.dumps({
        **result,
        "images_per_sec_in_process": len(paths) / best[0],
        "images_per_sec_workers": len(paths) / best[threads],
        "workers": threads,
        "torch": torch.__version__,
        "threads": threads,
    }))


if __name__ == "__main__":
    main()
