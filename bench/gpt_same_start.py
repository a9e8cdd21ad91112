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
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'reference'))
from gpt_model import GPT, adamw, nabla_name  # noqa: E402

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


model = GPT(V, D, H, L, T)
save_file({nabla_name(k, L): v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, 'init.safetensors'))
opt = adamw(model)
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
