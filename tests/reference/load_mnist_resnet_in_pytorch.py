#!/usr/bin/env python3
"""Loads a run of examples/mnist-resnet.toml into the equivalent PyTorch model with
load_state_dict(strict=True) and prints PyTorch's test accuracy, to compare with
`nabla eval RUN_DIR`. The mapping of names is described in the README (residual blocks).

Run (torch and safetensors installed):
    python tests/reference/load_mnist_resnet_in_pytorch.py runs/mnist-resnet/model.safetensors
"""
import gzip, sys, numpy as np, torch, torch.nn as nn
from safetensors.torch import load_file
class Residual(nn.Module):
    def __init__(self, layers, shortcut=None):
        super().__init__(); self.layers = nn.Sequential(*layers); self.shortcut = nn.Sequential(*shortcut) if shortcut else None
    def forward(self, x): return self.layers(x) + (self.shortcut(x) if self.shortcut is not None else x)
class GlobalAvgPool(nn.Module):
    def forward(self, x): return x.mean((2, 3))
def conv(cin, cout, k, s=1): return nn.Conv2d(cin, cout, k, s, k // 2, bias=False)
def block(cin, cout, s):
    body = [conv(cin, cout, 3, s), nn.BatchNorm2d(cout), nn.ReLU(), conv(cout, cout, 3), nn.BatchNorm2d(cout)]
    return Residual(body, None if s == 1 and cin == cout else [conv(cin, cout, 1, s), nn.BatchNorm2d(cout)])
net = nn.Sequential(conv(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), block(16, 16, 1), nn.ReLU(), block(16, 32, 2), nn.ReLU(),
                    block(32, 64, 2), nn.ReLU(), GlobalAvgPool(), nn.Linear(64, 10))
state = load_file(sys.argv[1])
print(net.load_state_dict(state, strict=True))
net.eval()
img = np.frombuffer(gzip.open('data/mnist/t10k-images-idx3-ubyte.gz').read()[16:], np.uint8).reshape(-1, 1, 28, 28)
lab = np.frombuffer(gzip.open('data/mnist/t10k-labels-idx1-ubyte.gz').read()[8:], np.uint8)
x = (torch.tensor(img, dtype=torch.float32) / 255 - 0.1307) / 0.3081
with torch.no_grad():
    logits = torch.cat([net(x[i:i + 1000]) for i in range(0, 10000, 1000)])
print("pytorch test accuracy", (logits.argmax(1).numpy() == lab).mean())
print("first logits", logits[0, :4].tolist())
