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
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from gpt_model import GPT, adamw, nabla_name

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


def main():
    model = GPT(V, D, H, L, T)
    save_file({nabla_name(k, L): v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(HERE, 'gpt_training_init.safetensors'))
    opt = adamw(model)
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
