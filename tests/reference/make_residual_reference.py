#!/usr/bin/env python3
"""Writes tests/reference/residual.json: a small residual CNN in PyTorch, the network
that tests/residual.rs builds from a nabla config, with its state_dict, an input,
its outputs in training and evaluation mode and the parameter gradients.

The PyTorch model is an nn.Sequential whose residual blocks are a module with two
nn.Sequential attributes, `layers` and `shortcut` (absent for an identity
shortcut), and whose global average pooling is one module computing x.mean((2, 3)):
then the state_dict names are exactly nabla's (`3.layers.0.weight`,
`5.shortcut.1.running_mean`), and load_state_dict(strict=True) takes nabla's
safetensors as they are.

Run (with torch installed): python tests/reference/make_residual_reference.py
"""
import json
import os

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


class Residual(nn.Module):
    def __init__(self, layers, shortcut=None):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(*shortcut) if shortcut else None

    def forward(self, x):
        return self.layers(x) + (self.shortcut(x) if self.shortcut is not None else x)


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


def conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)


def model():
    return nn.Sequential(
        conv(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        Residual([conv(4, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), conv(4, 4, 3), nn.BatchNorm2d(4)]), nn.ReLU(),
        Residual([conv(4, 8, 3, 2), nn.BatchNorm2d(8), nn.ReLU(), conv(8, 8, 3), nn.BatchNorm2d(8)],
                 shortcut=[conv(4, 8, 1, 2), nn.BatchNorm2d(8)]), nn.ReLU(),
        GlobalAvgPool(), nn.Linear(8, 3),
    ).double()


def entry(t):
    return {"shape": list(t.shape), "values": t.detach().reshape(-1).tolist()}


def main():
    net = model()
    with torch.no_grad():  # batch norm away from its identity start
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    state = {k: entry(v.double()) for k, v in net.state_dict().items()}
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    upstream = torch.randn(2, 3, dtype=torch.float64)
    net.train()
    y_train = net(x)
    (y_train * upstream).sum().backward()
    grads = {k: entry(p.grad) for k, p in net.named_parameters()}
    net.eval()
    y_eval = net(x)
    with open(os.path.join(HERE, "residual.json"), "w") as f:
        json.dump({"state": state, "input": entry(x), "upstream": entry(upstream),
                   "train_output": entry(y_train), "grads": grads, "eval_output": entry(y_eval)}, f)
    print("wrote residual.json with torch", torch.__version__)


if __name__ == "__main__":
    main()
