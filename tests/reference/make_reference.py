#!/usr/bin/env python3
"""Writes the PyTorch reference values that tests/nn_reference.rs checks nabla against.

Run (with torch installed): python tests/reference/make_reference.py
It writes tests/reference/layers.json and tests/reference/optimizers.json. Every input,
weight and output is stored, so the Rust tests need no random generator in common with
PyTorch. Layers run in float64; optimizers in float32 (as training does).
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


def values(t):
    return t.detach().reshape(-1).tolist()


def entry(t):
    return {"shape": list(t.shape), "values": values(t)}


def randn(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype)


def layer_cases():
    cases = {}

    def record(name, module, x, extra=None):
        module = module.double()
        params = {k: entry(v) for k, v in module.state_dict().items()}
        y = module(x)
        cases[name] = {"input": entry(x), "state": params, "output": entry(y)}
        if extra:
            cases[name].update(extra(module))

    record("linear", nn.Linear(5, 3), randn(4, 5))
    record("conv2d", nn.Conv2d(2, 4, 3, stride=2, padding=1), randn(2, 2, 7, 6))
    record("conv2d_groups_dilation", nn.Conv2d(4, 6, (3, 2), padding=(2, 1), dilation=2, groups=2), randn(1, 4, 6, 6))
    record("max_pool2d", nn.MaxPool2d(3, stride=2, padding=1), randn(2, 3, 7, 7))
    record("avg_pool2d", nn.AvgPool2d(2), randn(2, 3, 6, 6))
    record("layer_norm", nn.LayerNorm([3, 4]), randn(2, 3, 4))
    emb = nn.Embedding(6, 3).double()
    idx = torch.tensor([[1, 5, 0], [2, 2, 4]])
    cases["embedding"] = {"indices": values(idx.double()), "index_shape": list(idx.shape),
                          "state": {k: entry(v) for k, v in emb.state_dict().items()}, "output": entry(emb(idx))}

    def batch_norm(name, module, x):
        module = module.double()
        with torch.no_grad():
            module.weight.copy_(torch.linspace(0.5, 1.5, module.num_features, dtype=torch.float64))
            module.bias.copy_(torch.linspace(-0.2, 0.3, module.num_features, dtype=torch.float64))
        state_before = {k: entry(v.double()) for k, v in module.state_dict().items()}
        module.train()
        y_train = module(x)
        y_train2 = module(x * 2 + 1)
        state_after = {k: entry(v.double()) for k, v in module.state_dict().items()}
        module.eval()
        y_eval = module(x)
        cases[name] = {"input": entry(x), "state": state_before, "train_output": entry(y_train),
                       "train_output_2": entry(y_train2), "state_after": state_after, "eval_output": entry(y_eval)}

    batch_norm("batch_norm1d", nn.BatchNorm1d(3), randn(5, 3))
    batch_norm("batch_norm2d", nn.BatchNorm2d(2), randn(3, 2, 4, 4))

    x = randn(3, 4) * 3
    acts = {
        "relu": F.relu(x), "leaky_relu": F.leaky_relu(x, 0.01), "sigmoid": torch.sigmoid(x), "tanh": torch.tanh(x),
        "gelu": F.gelu(x), "gelu_tanh": F.gelu(x, approximate="tanh"), "silu": F.silu(x), "softmax": F.softmax(x, -1),
        "softplus": F.softplus(x), "log_softmax": F.log_softmax(x, -1),
    }
    cases["activations"] = {"input": entry(x), "outputs": {k: entry(v) for k, v in acts.items()}}

    pred, target = randn(4, 3), randn(4, 3)
    logits = randn(5, 4) * 2
    labels = torch.tensor([0, 3, 1, 1, 2])
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    bce_target = torch.tensor([[0.0, 1, 1], [1, 0, 0.5], [0, 0, 1], [1, 1, 0]], dtype=torch.float64)
    losses = {
        "mse": F.mse_loss(pred, target), "mse_sum": F.mse_loss(pred, target, reduction="sum"),
        "l1": F.l1_loss(pred, target), "huber": F.huber_loss(pred, target, delta=0.7),
        "cross_entropy": F.cross_entropy(logits, labels),
        "cross_entropy_sum": F.cross_entropy(logits, labels, reduction="sum"),
        "cross_entropy_smoothing": F.cross_entropy(logits, labels, label_smoothing=0.1),
        "cross_entropy_weights": F.cross_entropy(logits, labels, weight=weights),
        "cross_entropy_weights_smoothing": F.cross_entropy(logits, labels, weight=weights, label_smoothing=0.2),
        "nll": F.nll_loss(F.log_softmax(logits, -1), labels),
        "bce_with_logits": F.binary_cross_entropy_with_logits(pred, bce_target),
    }
    cases["losses"] = {"prediction": entry(pred), "target": entry(target), "logits": entry(logits),
                       "labels": labels.tolist(), "class_weights": weights.tolist(), "bce_target": entry(bce_target),
                       "outputs": {k: v.item() for k, v in losses.items()}}
    return cases


def optimizer_cases():
    """A few steps on a fixed quadratic and on a fixed tiny net, for each optimizer setting."""
    settings = {
        "sgd": (torch.optim.SGD, dict(lr=0.1)),
        "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
        "sgd_nesterov_decay": (torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
        "sgd_dampening": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3)),
        "adam": (torch.optim.Adam, dict(lr=0.01)),
        "adam_decay": (torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
        "adamw": (torch.optim.AdamW, dict(lr=0.01)),
        "rmsprop": (torch.optim.RMSprop, dict(lr=0.01)),
        "rmsprop_centered": (torch.optim.RMSprop, dict(lr=0.01, centered=True)),
        "rmsprop_momentum": (torch.optim.RMSprop, dict(lr=0.01, momentum=0.9, alpha=0.9)),
        "rmsprop_centered_momentum": (torch.optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01)),
        "adagrad": (torch.optim.Adagrad, dict(lr=0.1)),
        "adagrad_decay": (torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1)),
    }
    a = torch.tensor([1.0, 3.0, 0.5, 2.0])
    b = torch.tensor([0.5, -1.0, 2.0, 0.0])
    w0 = torch.tensor([1.0, -2.0, 3.0, 0.5])
    gen = torch.Generator().manual_seed(1)
    net0 = {"0.weight": torch.randn(4, 3, generator=gen) * 0.5, "0.bias": torch.randn(4, generator=gen) * 0.1,
            "2.weight": torch.randn(2, 4, generator=gen) * 0.5, "2.bias": torch.randn(2, generator=gen) * 0.1}
    x = torch.randn(5, 3, generator=gen)
    y = torch.randn(5, 2, generator=gen)
    out = {"quadratic": {"a": a.tolist(), "b": b.tolist(), "w0": w0.tolist()},
           "net": {"init": {k: entry(v) for k, v in net0.items()}, "x": entry(x), "y": entry(y)}, "runs": {}}
    for name, (cls, kw) in settings.items():
        w = w0.clone().requires_grad_(True)
        opt = cls([w], **kw)
        trajectory = []
        for _ in range(5):
            opt.zero_grad()
            loss = (0.5 * a * w * w + b * w).sum()
            loss.backward()
            opt.step()
            trajectory.append(w.detach().tolist())
        net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        net.load_state_dict(net0)
        opt = cls(net.parameters(), **kw)
        for _ in range(3):
            opt.zero_grad()
            F.mse_loss(net(x), y).backward()
            opt.step()
        out["runs"][name] = {"options": kw, "quadratic": trajectory,
                             "net": {k: values(v) for k, v in net.state_dict().items()}}
    return out


def main():
    with open(os.path.join(HERE, "layers.json"), "w") as f:
        json.dump(layer_cases(), f)
    with open(os.path.join(HERE, "optimizers.json"), "w") as f:
        json.dump(optimizer_cases(), f)
    print("wrote layers.json and optimizers.json with torch", torch.__version__)


if __name__ == "__main__":
    main()
