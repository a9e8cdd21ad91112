#!/usr/bin/env bash
# How a training step's time grows, nabla beside PyTorch, in one sitting, interleaved
# over rounds: the reference mlp at batch 1, 8, 64, 256 and 1024, and the reference
# character GPT at 64, 128, 256 and 512 positions of context (attention's cost grows
# with the square of the context; its share of the step's arithmetic is printed).
#
#   bench/cost_growth.sh [ROUNDS]
#   SUMMARY_OF=bench/growth-….jsonl bench/cost_growth.sh    # the tables of an earlier sitting
#
# PyTorch comes from VENV (default ~/.venvs/torch-ref; bench/compare.sh installs it).
# CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-2}
THREADS=${THREADS:-2}
VENV=${VENV:-$HOME/.venvs/torch-ref}
OUT=${OUT:-bench/growth-$(date +%Y%m%d-%H%M%S).jsonl}
MLP_STEPS=${MLP_STEPS:-200}
GPT_STEPS=${GPT_STEPS:-5}

if [ -n "${SUMMARY_OF:-}" ]; then
  OUT=$SUMMARY_OF ROUNDS=0   # only print the tables of an earlier sitting's lines
else
  cargo build --release --quiet
  : > "$OUT"
fi
for round in $(seq 1 "$ROUNDS"); do
  for batch in 1 8 64 256 1024; do
    echo "round $round/$ROUNDS: mlp batch $batch" >&2
    ./target/release/nabla --threads "$THREADS" bench --workload mlp --epochs 1 --batch "$batch" --steps "$MLP_STEPS" >> "$OUT"
    "$VENV/bin/python" bench/cost_growth.py mlp --batch "$batch" --steps "$MLP_STEPS" --threads "$THREADS" >> "$OUT"
  done
  for context in 64 128 256 512; do
    echo "round $round/$ROUNDS: gpt context $context" >&2
    ./target/release/nabla --threads "$THREADS" bench --workload gpt --context "$context" --steps "$GPT_STEPS" >> "$OUT"
    "$VENV/bin/python" bench/cost_growth.py gpt --context "$context" --steps "$GPT_STEPS" --threads "$THREADS" >> "$OUT"
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def median(workload, key, value, framework, field="ms_per_step"):
    got = [r[field] for r in rows if r["workload"] == workload and r.get(key) == value
           and r["framework"] == framework and r.get(field) is not None]
    return statistics.median(got) if got else None
print("| mlp batch | nabla ms/step | PyTorch ms/step | nabla / PyTorch | nabla GFLOP/s |")
print("|---|---|---|---|---|")
for b in [1, 8, 64, 256, 1024]:
    n, t = median("mlp", "batch_size", b, "nabla"), median("mlp", "batch_size", b, "pytorch")
    g = median("mlp", "batch_size", b, "nabla", "achieved_gflops")
    print(f"| {b} | {n:.3f} | {t:.3f} | {n / t:.2f} | {g:.0f} |")
print()
print("| GPT context | nabla ms/step | PyTorch ms/step | nabla / PyTorch | GFLOP/step | of it attention | nabla GFLOP/s |")
print("|---|---|---|---|---|---|---|")
for c in [64, 128, 256, 512]:
    n, t = median("gpt", "context", c, "nabla"), median("gpt", "context", c, "pytorch")
    f = median("gpt", "context", c, "nabla", "gflop_per_step")
    g = median("gpt", "context", c, "nabla", "achieved_gflops")
    # q·kᵀ and weights·v: 4·batch·T²·dim per block forward, ×3 with backward, 4 blocks
    attention = 3 * 4 * 32 * c * c * 128 * 4 / 1e9
    print(f"| {c} | {n:.1f} | {t:.1f} | {n / t:.2f} | {f:.1f} | {100 * attention / f:.0f}% | {g:.0f} |")
PY
echo "raw lines: $OUT" >&2
