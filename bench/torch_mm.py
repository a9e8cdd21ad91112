#!/usr/bin/env python3
"""torch.mm GFLOP/s on the shapes of `cargo bench --bench kernels`, for a same-sitting
comparison. Usage: python bench/torch_mm.py [--threads 2]"""
import argparse
import time

import torch

CASES = [
    ("256", 256, 256, 256, False, False),
    ("512", 512, 512, 512, False, False),
    ("1024", 1024, 1024, 1024, False, False),
    ("mlp forward 128x784*784x256", 128, 784, 256, False, False),
    ("mlp grad_w (784x128)T*128x256", 784, 128, 256, True, False),
    ("mlp grad_x 128x256*(784x256)T", 128, 256, 784, False, True),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for label, m, k, n, ta, tb in CASES:
        a = torch.randn(k, m) if ta else torch.randn(m, k)
        b = torch.randn(n, k) if tb else torch.randn(k, n)
        lhs = a.t() if ta else a
        rhs = b.t() if tb else b
        for _ in range(5):
            torch.mm(lhs, rhs)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            torch.mm(lhs, rhs)
            times.append(time.perf_counter() - start)
        median = sorted(times)[len(times) // 2]
        print(f"{label:34s} median {median * 1e6:9.1f} us  {2 * m * n * k / median / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
