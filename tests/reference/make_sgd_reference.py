#!/usr/bin/env python3
"""Reference for tests/cli.rs `init_and_fixed_order_match_pytorch`: PyTorch trains a
784-32-10 MLP on the first 256 MNIST training images, batch 64, no shuffling, plain
SGD lr 0.1, 1 epoch (4 steps), from the initial weights it saves. nabla's `train` with
`init = sgd_init.safetensors`, `shuffle = false` must end with the weights in
sgd_expected.safetensors.

Run (torch + safetensors installed): python tests/reference/make_sgd_reference.py
"""
import gzip
import os

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "data", "mnist")


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    torch.manual_seed(0)
    x = read_idx("train-images-idx3-ubyte.gz")[:256].astype(np.float32).reshape(-1, 784)
    x /= np.float32(255.0)
    x -= np.float32(0.1307)
    x /= np.float32(0.3081)
    y = read_idx("train-labels-idx1-ubyte.gz")[:256].astype(np.int64)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(HERE, "sgd_init.safetensors"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for start in range(0, 256, 64):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[start:start + 64]), y[start:start + 64])
        loss.backward()
        opt.step()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(HERE, "sgd_expected.safetensors"))
    print("wrote sgd_init.safetensors and sgd_expected.safetensors; last loss", loss.item())


if __name__ == "__main__":
    main()
