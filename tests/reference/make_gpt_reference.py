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
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
V, D, H, L, T = 11, 16, 4, 2, 8  # vocabulary, features, heads, blocks, positions
B, TIME = 2, 6  # batch and sequence length of the input (shorter than T)
torch.manual_seed(0)


class Block(nn.Module):  # as in torch_gpt.py
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.fc, self.out = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (z.view(b, t, H, D // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D // H)
        att = att.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float('-inf')).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, D))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(V, D), nn.Embedding(T, D)
        self.blocks = nn.Sequential(*[Block() for _ in range(L)])
        self.ln = nn.LayerNorm(D)
        self.head = nn.Linear(D, V, bias=False)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        return self.head(self.ln(self.blocks(x)))


def nabla_name(name):
    first, rest = name.split('.', 1)
    if first == 'tok':
        return '0.' + rest
    if first == 'pos':
        return '1.' + rest
    if first == 'blocks':
        index, rest = rest.split('.', 1)
        return f'{2 + int(index)}.{rest}'
    if first == 'ln':
        return f'{2 + L}.{rest}'
    return f'{3 + L}.{rest}'  # head


def entry(t):
    return {"shape": list(t.shape), "values": t.detach().reshape(-1).tolist()}


def main():
    model = GPT().double()
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
        "state": {nabla_name(n): entry(p) for n, p in model.named_parameters()},
        "logits": entry(logits),
        "loss": loss.item(),
        "grads": {nabla_name(n): entry(p.grad) for n, p in model.named_parameters()},
    }
    with open(os.path.join(HERE, 'gpt.json'), 'w') as f:
        json.dump(out, f)


if __name__ == '__main__':
    main()
