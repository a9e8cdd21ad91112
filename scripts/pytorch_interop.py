#!/usr/bin/env python3
"""Loads a model saved by nabla into the equivalent PyTorch nn.Sequential, checks the
outputs match, then saves a PyTorch-trained-style model for nabla to load back.

Usage (after `cargo run --release --example pytorch_interop -- export DIR`):
    python scripts/pytorch_interop.py DIR
Needs: torch, safetensors."""
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file


def network():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 10))


def main(directory):
    model = network()
    model.load_state_dict(load_file(f"{directory}/nabla_model.safetensors"))  # strict: every name and shape
    model.eval()
    x = load_file(f"{directory}/input.safetensors")["x"]
    expected = load_file(f"{directory}/nabla_output.safetensors")["y"]
    with torch.no_grad():
        diff = (model(x) - expected).abs().max().item()
    print(f"nabla-saved model in PyTorch: max |difference| of outputs = {diff:.3e}")
    if diff > 1e-5:
        sys.exit("outputs differ")

    torch.manual_seed(3)
    other = network()
    other.train()
    with torch.no_grad():
        other(torch.randn(16, 1, 8, 8) * 2 + 1)  # running statistics off their defaults
    other.eval()
    save_file(other.state_dict(), f"{directory}/torch_model.safetensors")
    with torch.no_grad():
        save_file({"y": other(x).contiguous()}, f"{directory}/torch_output.safetensors")
    print("wrote torch_model and torch_output")


if __name__ == "__main__":
    main(sys.argv[1])
