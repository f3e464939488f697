"""The straightforward PyTorch implementation of one InfoDisent training step, the reference
`infodisent bench train --torch-python PY` times in the same run: U = torch.linalg.matrix_exp(A - A^T)
with autograd, J = F U^T for every pixel, v = max ReLU(J) - max ReLU(-J), logits = v ReLU(W)^T + b,
cross-entropy, AdamW, W clamped to >= 0. Prints one JSON line.

Usage: python train_torch.py DIM BATCH CELLS CLASSES STEPS A_SCALE THREADS SEED [WARMUP]
"""
import json
import sys
import time

import torch


def main():
    d, n, cells, classes, steps = (int(x) for x in sys.argv[1:6])
    a_scale, threads, seed = float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
    warmup = int(sys.argv[9]) if len(sys.argv) > 9 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    pixels = ((torch.rand(n, cells, d) * 2 - 1).clamp(min=0) * 2).contiguous()
    a = ((torch.rand(d, d) * 2 - 1) * a_scale * 3**0.5).requires_grad_()
    w = (torch.rand(classes, d) * 0.01).requires_grad_()
    b = torch.zeros(classes, requires_grad=True)
    y = torch.randint(classes, (n,))
    opt = torch.optim.AdamW([a, w, b], lr=1e-3, weight_decay=0.0)

    def step():
        u = torch.linalg.matrix_exp(a - a.T)
        j = pixels @ u.T
        v = j.relu().amax(1) - (-j).relu().amax(1)
        logits = v @ w.relu().T + b
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            w.clamp_(min=0)

    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - started) / steps
    print(json.dumps({"seconds_per_step": seconds, "torch": torch.__version__, "threads": threads}))


if __name__ == "__main__":
    main()
