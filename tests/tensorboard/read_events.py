"""nabla's TensorBoard event files, read back by TensorBoard's own reader: every
scalar equals the run's metrics.jsonl, and every parameter has weight and
gradient histograms whose counts add up to its size.

    python tests/tensorboard/read_events.py NABLA_BINARY WORK_DIR

Needs the `tensorboard` package (.ci/run installs it, or skips this test with a
message when it cannot).
"""

import json
import math
import os
import shutil
import subprocess
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

EPOCHS = 4
# examples/spirals.toml: 2 → 64 → 64 → 2, batches of 32 from 800 training rows
STEPS_PER_EPOCH = 25
PARAMETERS = {"0.weight": 128, "0.bias": 64, "2.weight": 4096, "2.bias": 64, "4.weight": 128, "4.bias": 2}


def close(a, b):
    # scalars are stored as 32-bit floats
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def main():
    nabla, work = sys.argv[1], sys.argv[2]
    run = os.path.join(work, "tensorboard-run")
    shutil.rmtree(run, ignore_errors=True)
    subprocess.run([nabla, "train", "examples/spirals.toml", "--epochs", str(EPOCHS), "--out", run,
                    "--tensorboard"], check=True, stdout=subprocess.DEVNULL)
    logs = os.path.join(run, "tensorboard")
    files = [f for f in os.listdir(logs) if f.startswith("events.out.tfevents.")]
    assert len(files) == 1, f"one event file expected in {logs}, found {files}"

    events = EventAccumulator(logs, size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    metrics = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]

    for key, tag in [("train_loss", "loss/train"), ("test_loss", "loss/test"),
                     ("train_accuracy", "accuracy/train"), ("test_accuracy", "accuracy/test")]:
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [m["epoch"] * STEPS_PER_EPOCH for m in metrics], tag
        for event, line in zip(logged, metrics):
            assert close(event.value, line[key]), f"{tag} at {event.step}: {event.value} vs {line[key]}"
    for name in PARAMETERS:
        logged = events.Scalars(f"grad_norm/{name}")
        assert all(close(e.value, m["grad_norm"][name]) for e, m in zip(logged, metrics)), name

    per_step = events.Scalars("loss/train_step")
    assert [e.step for e in per_step] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    # the epoch's mean training loss is the mean of its steps' losses, weighted by batch size
    rows = [32] * 25
    rows[-1] = 800 - 32 * 24
    for epoch, line in enumerate(metrics):
        steps = per_step[epoch * STEPS_PER_EPOCH:(epoch + 1) * STEPS_PER_EPOCH]
        mean = sum(e.value * n for e, n in zip(steps, rows)) / sum(rows)
        assert math.isclose(mean, line["train_loss"], rel_tol=1e-5), (mean, line["train_loss"])
    lr = events.Scalars("lr")
    assert close(lr[0].value, metrics[0]["lr"]), (lr[0].value, metrics[0]["lr"])

    for name, size in PARAMETERS.items():
        for kind in ["weights", "gradients"]:
            histograms = events.Histograms(f"{kind}/{name}")
            assert len(histograms) == EPOCHS, f"{kind}/{name}: {len(histograms)} histograms"
            for h in histograms:
                value = h.histogram_value
                assert value.num == size and sum(value.bucket) == size, f"{kind}/{name}"
                assert value.min <= value.max

    print(f"tensorboard read back {len(tags['scalars'])} scalar and {len(tags['histograms'])} "
          f"histogram tags from {files[0]}: all match metrics.jsonl")


if __name__ == "__main__":
    main()
