#!/usr/bin/env python3
"""Writes tests/reference/gpt_training.json and gpt_training_init.safetensors: 20
training steps of shared/bench/torch_gpt.py's recipe in PyTorch (float32), for
tests/gpt_training.rs to repeat from the same initial weights on the same windows.

The network is torch_gpt.py's at a smaller size so the weights stay small in the
repository (64 features, 4 heads, 2 blocks, 64 characters of context, batch 8);
everything else is the workload's: data/shakespeare.txt as characters, the first
90% for training, windows drawn by torch.randint from a generator seeded 0, AdamW
(lr 1e-3, betas (0.9, 0.99), eps 1e-8, weight decay 0.1 on parameters of dim >= 2),
gradient norm clipped at 1. The weights are saved under nabla's names
(nn::zoo::gpt: 0 = tokens, 1 = positions, 2.. = blocks, then the norm and head).

Run (with torch and safetensors installed): python tests/reference/make_gpt_training_reference.py
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, '..', '..')
D, H, L, T, B, STEPS = 64, 4, 2, 64, 8, 20
torch.manual_seed(0)
torch.set_num_threads(1)

text = open(os.path.join(ROOT, 'data', 'shakespeare.txt'), 'rb').read().decode('latin-1')
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data))
train = data[:n]
V = len(chars)


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
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

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
    return f'{3 + L}.{rest}'


def main():
    model = GPT()
    save_file({nabla_name(k): v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(HERE, 'gpt_training_init.safetensors'))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': rest, 'weight_decay': 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    g = torch.Generator().manual_seed(0)
    offsets, losses = [], []
    for _ in range(STEPS):
        off = torch.randint(len(train) - T, (B,), generator=g)
        x = torch.stack([train[o:o + T] for o in off])
        y = torch.stack([train[o + 1:o + T + 1] for o in off])
        opt.zero_grad()
        loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        offsets.append(off.tolist())
        losses.append(loss.item())
    with open(os.path.join(HERE, 'gpt_training.json'), 'w') as f:
        json.dump({"shape": {"vocab": V, "dim": D, "heads": H, "layers": L, "block_size": T, "batch": B},
                   "offsets": offsets, "losses": losses}, f)


if __name__ == '__main__':
    main()
