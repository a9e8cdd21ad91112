#!/usr/bin/env python3
"""PyTorch's side of bench/cost_growth.sh: how a training step's time grows with the
batch (the reference mlp: 784-256-128-10 ReLU, SGD momentum 0.9 at 0.05·batch/128, MNIST
batches drawn at random) and with the context (the reference character GPT of
shared/bench/torch_gpt.py — its model is tests/reference/gpt_model.py — at 32 windows
of T positions, AdamW, clipping at 1). One JSON line per run, the fields nabla bench
prints: workload, batch_size or context, ms_per_step.

    python bench/cost_growth.py mlp --batch 64 [--steps 200]
    python bench/cost_growth.py gpt --context 256 [--steps 5]
"""
import argparse
import gzip
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
from gpt_model import GPT  # noqa: E402


def mnist_images(data_dir):
    with gzip.open(os.path.join(data_dir, "train-images-idx3-ubyte.gz")) as f:
        images = torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8)
    with gzip.open(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")) as f:
        labels = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()
    x = (images.float().view(-1, 784) / 255.0 - 0.1307) / 0.3081
    return x, labels


def time_steps(step, steps):
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def mlp(batch, steps, data_dir):
    x, y = mnist_images(data_dir)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    # the rate scaled with the batch, as nabla bench --batch does
    opt = torch.optim.SGD(model.parameters(), lr=0.05 * batch / 128, momentum=0.9)
    g = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(len(x), (batch,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()

    return {"workload": "mlp", "batch_size": batch, "ms_per_step": round(1e3 * time_steps(step, steps), 4)}


def gpt(context, steps, text_path):
    text = open(text_path, "rb").read().decode("utf-8")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    model = GPT(len(chars), 128, 4, 4, context)
    decay = [q for q in model.parameters() if q.dim() >= 2]
    rest = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    g = torch.Generator().manual_seed(0)

    def step():
        off = torch.randint(len(data) - context - 1, (32,), generator=g)
        x = torch.stack([data[o:o + context] for o in off])
        y = torch.stack([data[o + 1:o + context + 1] for o in off])
        opt.zero_grad()
        F.cross_entropy(model(x).view(-1, len(chars)), y.view(-1)).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return {"workload": "gpt", "context": context, "ms_per_step": round(1e3 * time_steps(step, steps), 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=["mlp", "gpt"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default="data/mnist")
    ap.add_argument("--text", default="data/shakespeare.txt")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.workload == "mlp":
        line = mlp(a.batch, a.steps or 200, a.data_dir)
    else:
        line = gpt(a.context, a.steps or 5, a.text)
    line.update({"framework": "pytorch", "threads": a.threads, "version": torch.__version__})
    print(json.dumps(line))


if __name__ == "__main__":
    main()
