"""The character GPT of shared/bench/torch_gpt.py as a PyTorch module, at any size,
and the map from its state_dict names to nabla's (nn::zoo::gpt is a Sequential:
0 = token embedding, 1 = position embedding, 2.. = blocks, then the final
LayerNorm and the head). Imported by the reference generators next to it and by
bench/gpt_same_start.py."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """torch_gpt.py's pre-LayerNorm block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, dim, heads):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, t, _ = x.shape
        d, h = self.dim, self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)
        att = att.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float('-inf')).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """Token + position embeddings, `layers` blocks, a final LayerNorm, a head without
    bias; with `gpt_init`, Linear and Embedding weights N(0, 0.02²) and zero biases."""

    def __init__(self, vocab, dim, heads, layers, block_size, gpt_init=True):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(block_size, dim)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        if gpt_init:
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        return self.head(self.ln(self.blocks(x)))


def nabla_name(name, layers):
    """`blocks.1.qkv.weight` → `3.qkv.weight`, and so on."""
    first, rest = name.split('.', 1)
    if first == 'tok':
        return '0.' + rest
    if first == 'pos':
        return '1.' + rest
    if first == 'blocks':
        index, rest = rest.split('.', 1)
        return f'{2 + int(index)}.{rest}'
    return f'{2 + layers}.{rest}' if first == 'ln' else f'{3 + layers}.{rest}'


def adamw(model):
    """torch_gpt.py's optimizer: decay 0.1 on parameters of dim >= 2, none on the rest."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': rest, 'weight_decay': 0.0}],
                             lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
