#!/usr/bin/env python3
"""Writes tests/reference/onnx/: small PyTorch networks exported to ONNX by
torch.onnx.export (the TorchScript exporter, opset 17, its default constant
folding, dynamic batch), with an input batch and PyTorch's outputs for it in
onnx.json. tests/onnx.rs imports each file and checks nabla's outputs against
PyTorch's; tests/onnx_runtime.rs exports the import again and checks ONNX Runtime.

The networks use what `nabla import` reads from PyTorch: an nn.Sequential of
Linear, Conv2d (stride, padding, dilation, groups, bias=False), BatchNorm1d/2d
(folded into the convolution before it by the exporter, kept elsewhere),
LayerNorm, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1) + Flatten, Dropout, Identity,
ReLU, LeakyReLU, Sigmoid, Tanh, Softsign, SiLU, GELU (erf and tanh forms, which
opset 17 spells as Div/Erf/Add/Mul and Pow/Tanh patterns), and residual modules
with `layers` and `shortcut` attributes.

Run (with torch installed): python tests/reference/make_onnx_reference.py
"""
import json
import os

import torch
import torch.nn as nn

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx")
torch.manual_seed(0)


class Residual(nn.Module):
    def __init__(self, layers, shortcut=None):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(*shortcut) if shortcut else nn.Identity()

    def forward(self, x):
        return self.layers(x) + self.shortcut(x)


def table():
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)), (5,)


def mlp():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(24, 12), nn.BatchNorm1d(12), nn.GELU(),
        nn.Linear(12, 12), nn.LayerNorm(12), nn.GELU(approximate="tanh"),
        nn.Linear(12, 3)), (1, 4, 4)


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(24, 10), nn.Sigmoid(), nn.Linear(10, 4)), (1, 8, 8)


def residual():
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.LeakyReLU(0.2),
        Residual([nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.SiLU(),
                  nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)]),
        nn.ReLU(),
        Residual([nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.Softsign(), nn.Identity()],
                 shortcut=[nn.Conv2d(6, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8)]),
        nn.ReLU(), nn.BatchNorm2d(8),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)), (3, 8, 8)


def entry(t):
    return {"shape": list(t.shape), "values": t.detach().reshape(-1).tolist()}


def main():
    os.makedirs(HERE, exist_ok=True)
    cases = {}
    for name, make in [("table", table), ("mlp", mlp), ("cnn", cnn), ("residual", residual)]:
        net, shape = make()
        with torch.no_grad():  # batch norm away from its identity start
            for m in net.modules():
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.3, 0.3)
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
        net.eval()
        x = torch.randn(4, *shape)
        with torch.no_grad():
            y = net(x)
        torch.onnx.export(net, (x,), os.path.join(HERE, f"{name}.onnx"), opset_version=17,
                          dynamo=False, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        cases[name] = {"input": entry(x), "output": entry(y)}
    with open(os.path.join(HERE, "onnx.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)
    print("wrote", sorted(os.listdir(HERE)), "with torch", torch.__version__)


if __name__ == "__main__":
    main()
