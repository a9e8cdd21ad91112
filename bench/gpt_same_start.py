#!/usr/bin/env python3
"""The reference `gpt` workload (shared/bench/torch_gpt.py) with its start written out,
so nabla can train from the same point: the initial weights (under nabla's names) and
every step's window offsets, then PyTorch's validation loss after STEPS steps.

  python bench/gpt_same_start.py OUT_DIR [STEPS]     # then:
  cargo run --release --example gpt_same_start -- OUT_DIR

Writes OUT_DIR/init.safetensors, OUT_DIR/offsets.json and OUT_DIR/pytorch.json
(val_loss over torch_gpt.py's 20 validation windows, and the loss of every 100th step).
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = sys.argv[1]
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(2)
torch.manual_seed(0)
text = open(os.path.join(ROOT, 'data', 'shakespeare.txt'), 'rb').read().decode('latin-1')
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data))
train, val = data[:n], data[n:]
V, D, H, L, T, B = len(chars), 128, 4, 4, 128, 32


class Block(nn.Module):  # torch_gpt.py's
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
    return f'{2 + L}.{rest}' if first == 'ln' else f'{3 + L}.{rest}'


model = GPT()
save_file({nabla_name(k): v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, 'init.safetensors'))
decay = [p for p in model.parameters() if p.dim() >= 2]
rest = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': rest, 'weight_decay': 0.0}],
                        lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
g = torch.Generator().manual_seed(0)
offsets, losses = [], {}
for step in range(STEPS):
    off = torch.randint(len(train) - T, (B,), generator=g)
    x = torch.stack([train[o:o + T] for o in off]); y = torch.stack([train[o + 1:o + T + 1] for o in off])
    opt.zero_grad()
    loss = F.cross_entropy(model(x).view(-1, V), y.view(-1)); loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    offsets.append(off.tolist())
    if (step + 1) % 100 == 0:
        losses[step + 1] = loss.item()
with torch.no_grad():
    offs = [i * (len(val) - T - 1) // 20 for i in range(20)]
    x = torch.stack([val[o:o + T] for o in offs]); y = torch.stack([val[o + 1:o + T + 1] for o in offs])
    val_loss = F.cross_entropy(model(x).view(-1, V), y.view(-1)).item()
json.dump(offsets, open(os.path.join(OUT, 'offsets.json'), 'w'))
json.dump({'steps': STEPS, 'val_loss': val_loss, 'train_losses': losses}, open(os.path.join(OUT, 'pytorch.json'), 'w'))
print(json.dumps({'framework': 'pytorch', 'steps': STEPS, 'val_loss': round(val_loss, 4), 'train_losses': losses}))
