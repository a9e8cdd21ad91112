#!/usr/bin/env python3
"""Writes tests/reference/gpt.json: a small character GPT in PyTorch (float64), the
network of shared/bench/torch_gpt.py at a toy size, with its weights under nabla's
names, an input, the logits, the loss and every parameter's gradient.

nabla's `nn::zoo::gpt` is an nn.Sequential-like stack: 0 = token embedding,
1 = position embedding, 2.. = blocks (ln1, qkv, proj, ln2, fc, out), then the final
LayerNorm and the head. `names()` maps this module's state_dict onto those names.

Run (with torch installed): python tests/reference/make_gpt_reference.py
"""
import json
import os

import torch
import torch.nn.functional as F

from gpt_model import GPT, nabla_name

HERE = os.path.dirname(os.path.abspath(__file__))
V, D, H, L, T = 11, 16, 4, 2, 8  # vocabulary, features, heads, blocks, positions
B, TIME = 2, 6  # batch and sequence length of the input (shorter than T)
torch.manual_seed(0)


def entry(t):
    return {"shape": list(t.shape), "values": t.detach().reshape(-1).tolist()}


def main():
    model = GPT(V, D, H, L, T, gpt_init=False).double()
    with torch.no_grad():  # norms away from their identity start
        for name, p in model.named_parameters():
            if name.endswith('ln1.weight') or name.endswith('ln2.weight') or name == 'ln.weight':
                p.uniform_(0.5, 1.5)
            elif 'ln' in name and name.endswith('bias'):
                p.uniform_(-0.2, 0.2)
    ids = torch.randint(V, (B, TIME))
    targets = torch.randint(V, (B, TIME))
    logits = model(ids)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    loss.backward()
    out = {
        "shape": {"vocab": V, "dim": D, "heads": H, "layers": L, "block_size": T},
        "ids": entry(ids.double()),
        "targets": targets.reshape(-1).tolist(),
        "state": {nabla_name(n, L): entry(p) for n, p in model.named_parameters()},
        "logits": entry(logits),
        "loss": loss.item(),
        "grads": {nabla_name(n, L): entry(p.grad) for n, p in model.named_parameters()},
    }
    with open(os.path.join(HERE, 'gpt.json'), 'w') as f:
        json.dump(out, f)


if __name__ == '__main__':
    main()
