"""Checks nabla's ONNX files with the real runtime (run by tests/onnx_runtime.rs).

    python compare.py DIR

DIR/checks.json lists checks, each an ONNX file, an input (raw little-endian values
and their shape) and the logits nabla computed for it. For each: the ONNX checker
(full_check, with shape inference) must accept the file; ONNX Runtime must give
nabla's logits to 1e-4 relative (per sample: max |ort - nabla| / max |nabla|) and the
same argmax for every sample (a near-tie, top two within 1e-5 of the sample's
scale, excepted) -- run on the whole batch and on every sample alone (batch 1).
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4


def load(directory, name, dtype, shape):
    return np.fromfile(os.path.join(directory, name), dtype=dtype).reshape(shape)


def compare(label, got, want):
    """Worst relative error over samples and the count of argmax disagreements."""
    assert got.shape == want.shape, f"{label}: shape {got.shape}, nabla's {want.shape}"
    worst, disagreements, ties = 0.0, 0, 0
    for sample_got, sample_want in zip(got, want):
        scale = np.abs(sample_want).max()
        worst = max(worst, float(np.abs(sample_got - sample_want).max() / scale))
        # argmax per position (a text model scores every position)
        flat_got = sample_got.reshape(-1, sample_got.shape[-1])
        flat_want = sample_want.reshape(-1, sample_want.shape[-1])
        for g, w in zip(flat_got, flat_want):
            if g.argmax() != w.argmax():
                top_two = np.sort(w)[-2:]
                if top_two[1] - top_two[0] <= 1e-5 * scale:
                    ties += 1
                else:
                    disagreements += 1
    return worst, disagreements, ties


def main():
    directory = sys.argv[1]
    with open(os.path.join(directory, "checks.json")) as f:
        checks = json.load(f)
    failed = False
    for check in checks:
        path = os.path.join(directory, check["model"])
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inputs = load(directory, check["input"], check["dtype"], check["input_shape"])
        want = load(directory, check["logits"], np.float32, check["logits_shape"])
        name = session.get_inputs()[0].name
        batch = session.run(None, {name: inputs})[0]
        alone = np.concatenate([session.run(None, {name: inputs[i : i + 1]})[0] for i in range(len(inputs))])
        for label, got in [("batch %d" % len(inputs), batch), ("batch 1", alone)]:
            worst, disagreements, ties = compare(label, got, want)
            ok = worst <= TOLERANCE and disagreements == 0
            failed |= not ok
            print(
                f"{'ok  ' if ok else 'FAIL'} {check['model']} ({name} {list(inputs.shape)}), {label}: "
                f"worst relative difference {worst:.2e}, argmax disagreements {disagreements}"
                + (f" (and {ties} near-ties)" if ties else "")
            )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
