#!/usr/bin/env bash
# Data-parallel scaling on this machine: one process with THREADS threads against
# `mpirun -np RANKS` with THREADS/RANKS threads per rank, same workload, interleaved
# over rounds; prints the medians and the throughput ratio (ranks / one process).
#
#   bench/scaling.sh [ROUNDS] [WORKLOADS...]     e.g. bench/scaling.sh 5 mlp resnet
#
# Needs the `mpi` feature's build (an MPI library; see the README) and mpirun.
# RANKS (default 2), THREADS (default 2), RESNET_STEPS (default 20), MLP_EPOCHS (default 2).
# CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
shift || true
WORKLOADS=${*:-mlp resnet}
RANKS=${RANKS:-2}
THREADS=${THREADS:-2}
RESNET_STEPS=${RESNET_STEPS:-20}
MLP_EPOCHS=${MLP_EPOCHS:-2}
OUT=${OUT:-bench/scaling-$(date +%Y%m%d-%H%M%S).jsonl}
PER_RANK=$(( THREADS / RANKS > 0 ? THREADS / RANKS : 1 ))

cargo build --release --quiet --features mpi
bench_args() {
  case "$1" in
    resnet) echo "--workload resnet --steps $RESNET_STEPS" ;;
    gpt) echo "--workload gpt --steps 30" ;;
    *) echo "--workload $1 --epochs $MLP_EPOCHS" ;;
  esac
}
: > "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  for workload in $WORKLOADS; do
    echo "round $round/$ROUNDS: $workload" >&2
    # shellcheck disable=SC2046
    ./target/release/nabla --threads "$THREADS" bench $(bench_args "$workload") | tail -1 >> "$OUT"
    # shellcheck disable=SC2046
    NABLA_THREADS=$PER_RANK mpirun --allow-run-as-root -np "$RANKS" \
      ./target/release/nabla bench $(bench_args "$workload") | tail -1 >> "$OUT"
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
print(f"\n{'workload':8} {'one process':>14} {'ranks':>14} {'throughput ratio':>17} {'all-reduce ms':>14} {'waited ms':>10} {'gradient MB':>12}")
for w in ["mlp", "cnn", "resnet", "gpt"]:
    one = [r for r in rows if r["workload"] == w and "ranks" not in r]
    many = [r for r in rows if r["workload"] == w and "ranks" in r]
    if not one or not many:
        continue
    key = "ms_per_step" if w in ("resnet", "gpt") else "train_seconds"
    a = statistics.median(r[key] for r in one)
    b = statistics.median(r[key] for r in many)
    reduce = statistics.median(r["all_reduce_ms_per_step"] for r in many)
    wait = statistics.median(r["comm_wait_ms_per_step"] for r in many)
    mb = many[0]["gradient_bytes"] / 1e6
    unit = "ms/step" if key == "ms_per_step" else "s/epoch"
    print(f"{w:8} {a:9.3f} {unit:>4} {b:9.3f} {unit:>4} {a / b:17.2f} {reduce:14.3f} {wait:10.3f} {mb:12.2f}")
PY
