#!/usr/bin/env bash
# nabla vs PyTorch on the reference workloads, in one sitting, interleaved over
# several rounds; prints medians and the ratio nabla/PyTorch per workload.
#
#   bench/compare.sh [ROUNDS] [WORKLOADS...]      e.g. bench/compare.sh 3 gpt resnet cnn mlp tiny
#
# PyTorch is installed into a venv outside the repo if missing (VENV, default
# ~/.venvs/torch-ref). The reference scripts are shared/bench/torch_mnist.py,
# torch_resnet.py and torch_gpt.py next to the repository (REFERENCES to override
# the directory). GPT_STEPS (default 50) timed steps for gpt. NABLA_ISA=avx2 compares
# both frameworks on AVX2 only.
# CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
shift || true
WORKLOADS=${*:-mlp cnn tiny}
THREADS=${THREADS:-2}
GPT_STEPS=${GPT_STEPS:-50}
VENV=${VENV:-$HOME/.venvs/torch-ref}
REFERENCES=${REFERENCES:-../shared/bench}
OUT=${OUT:-bench/results-$(date +%Y%m%d-%H%M%S).jsonl}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "installing PyTorch into $VENV (once; a few GB)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch numpy
fi
# NABLA_ISA=avx2 stands for a CPU without AVX-512: PyTorch is held to AVX2 as well
# (its own kernels and oneDNN's), so that both run what such a CPU has
if [ "${NABLA_ISA:-}" = avx2 ]; then
  export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
fi
cargo build --release --quiet
: > "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  for workload in $WORKLOADS; do
    echo "round $round/$ROUNDS: $workload" >&2
    if [ "$workload" = gpt ]; then
      ./target/release/nabla --threads "$THREADS" bench --workload gpt --steps "$GPT_STEPS" >> "$OUT"
      "$VENV/bin/python" "$REFERENCES/torch_gpt.py" --threads "$THREADS" --steps "$GPT_STEPS" --text data/shakespeare.txt >> "$OUT"
      continue
    fi
    ./target/release/nabla --threads "$THREADS" bench --workload "$workload" >> "$OUT"
    if [ "$workload" = resnet ]; then
      "$VENV/bin/python" "$REFERENCES/torch_resnet.py" --threads "$THREADS" >> "$OUT"
    else
      "$VENV/bin/python" "$REFERENCES/torch_mnist.py" --workload "$workload" --threads "$THREADS" --data-dir data/mnist >> "$OUT"
    fi
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def metric(r):
    return {"tiny": r.get("us_per_step"), "resnet": r.get("ms_per_step"), "gpt": r.get("ms_per_step")}.get(r["workload"], r.get("train_seconds"))
print(f"\n{'workload':8} {'metric':14} {'nabla':>10} {'pytorch':>10} {'ratio':>7} {'rss nabla':>10} {'rss torch':>10} {'acc nabla':>9} {'acc torch':>9}")
for w in ["gpt", "resnet", "mlp", "cnn", "tiny", "gemm"]:
    got = {}
    for fw in ["nabla", "pytorch"]:
        rs = [r for r in rows if r["workload"] == w and r.get("framework") == fw]
        if not rs:
            continue
        if w == "gemm":
            rs = [r for r in rs if r.get("n") == 1024]
            got[fw] = (statistics.median(r["gflops"] for r in rs), max(r["peak_rss_mb"] or 0 for r in rs), None)
        elif w in ("resnet", "gpt"):
            got[fw] = (statistics.median(metric(r) for r in rs), max(r["peak_rss_mb"] or 0 for r in rs), None)
        else:
            last = max(r["epoch"] or 0 for r in rs)
            accs = [r["test_accuracy"] for r in rs if (r["epoch"] or 0) == last]
            got[fw] = (statistics.median(metric(r) for r in rs), max(r["peak_rss_mb"] or 0 for r in rs), statistics.median(accs))
    if len(got) < 2:
        continue
    name = {"gpt": "ms/step", "resnet": "ms/step", "mlp": "s/epoch", "cnn": "s/epoch", "tiny": "us/step", "gemm": "GFLOP/s n=1024"}[w]
    n, t = got["nabla"], got["pytorch"]
    acc = lambda v: "" if v is None else f"{100 * v:.2f}%"
    print(f"{w:8} {name:14} {n[0]:10.4g} {t[0]:10.4g} {n[0] / t[0]:7.3f} {n[1]:10.1f} {t[1]:10.1f} {acc(n[2]):>9} {acc(t[2]):>9}")
busy = [r.get("other_cpu_busy_frac") for r in rows if r.get("other_cpu_busy_frac") is not None]
if busy:
    print(f"\nother_cpu_busy_frac: median {statistics.median(busy):.3f}, max {max(busy):.3f} (trust lines under ~0.05)")
print(f"raw lines: {sys.argv[1]}")
PY
