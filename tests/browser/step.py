"""The dashboard's step view tested as a learner would use it, in a real (headless)
Chromium:

- LeNet (`examples/mnist-cnn.toml`, example 0): press → from the first node to the
  loss and on, back to the first convolution; every node shows its op; each layer's
  output going forward and its gradient going back is the line `nabla explain
  examples/mnist-cnn.toml --sample 0` prints, digit for digit, as are the loss and
  the update's loss before and after (which must fall);
- the spirals MLP: click one weight's line in the network drawing and read its
  derivation dL/dW[j][i] = δ_j · a_i, which must equal backpropagation's number;
- a URL names a moment: opening it lands there;
- the character GPT (its window's graph has 135 nodes, its fused ops each one): the view loads in under 2 s, grouped by
  layer, and a layer opens on click;
- no console errors. Screenshots of each stage go to OUT_DIR.

    python tests/browser/step.py NABLA_BINARY OUT_DIR
"""

import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from dashboard import Browser  # noqa: E402


class Served:
    """`nabla explain CONFIG --dashboard`: the step view of a config's model."""

    def __init__(self, nabla, config, sample=0):
        self.process = subprocess.Popen(
            [nabla, "explain", config, "--sample", str(sample), "--dashboard", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.process.stdout], daemon=True).start()
        deadline = time.time() + 120
        self.url = None
        while self.url is None and time.time() < deadline:
            try:
                found = re.search(r"step through one training step: (http://\S+)", lines.get(timeout=1))
            except queue.Empty:
                continue
            self.url = found and found.group(1)
        if self.url is None:
            self.process.kill()
            raise AssertionError(f"nabla explain {config} --dashboard printed no URL")

    def close(self, browser):
        # leave the page first: its open requests must not fail as the server goes
        browser.call("Page.navigate", url="about:blank")
        self.process.terminate()
        self.process.wait(timeout=30)


def explained(nabla, config, sample):
    """What `nabla explain CONFIG --sample N` prints, read into its numbers."""
    out = subprocess.run([nabla, "explain", config, "--sample", str(sample)],
                         capture_output=True, text=True, check=True).stdout
    outputs = dict(re.findall(r"^  (\d+): .*\n       out (.*)$", out, re.M))
    deltas = dict(re.findall(r"^  δ(\d+) \(.*?\)  (\[.*)$", out, re.M))
    loss = re.search(r"^  (p\(class .*|L = mean .*)$", out, re.M).group(1)
    before, after = re.search(r"^  L: (\S+) → (\S+) ", out, re.M).groups()
    return {"outputs": outputs, "deltas": deltas, "loss": loss, "before": before, "after": after}


def press(browser, key):
    code = {"ArrowRight": 39, "ArrowLeft": 37}[key]
    for kind in ["rawKeyDown", "keyUp"]:
        browser.call("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                     windowsVirtualKeyCode=code, nativeVirtualKeyCode=code)


def moment(browser):
    return browser.evaluate(
        "(() => { const c = document.getElementById('step-card');"
        " const text = (id) => (document.getElementById(id) || {}).textContent || null;"
        " return {stage: c.dataset.stage, node: c.dataset.node, op: text('step-op'),"
        " value: text('step-value'), grad: text('step-grad'), loss: text('step-loss'),"
        " after: text('step-after')}; })()")


def lenet(browser, nabla, out_dir):
    numbers = explained(nabla, "examples/mnist-cnn.toml", 0)
    served = Served(nabla, "examples/mnist-cnn.toml")
    try:
        browser.call("Page.navigate", url=served.url)
        browser.wait_for("document.getElementById('step-card').dataset.stage === 'forward'", 60,
                         "the step view's first moment")
        trace = browser.evaluate("window.stepView.step.trace")
        nodes, layers = trace["nodes"], trace["layers"]
        output_of = {layer["output"]: str(layer["index"]) for layer in layers}
        first_conv = layers[0]["output"]
        seen_forward, seen_backward = set(), set()
        shot = set()
        for _ in range(4 * len(nodes) + 4):
            now = moment(browser)
            node = None if now["node"] == "" else int(now["node"])
            if now["stage"] in ("forward", "backward"):
                info = nodes[node]
                expected_op = info.get("name") or ("the example" if info["op"] == "input" else info["op"])
                assert expected_op in now["op"], f"node {node}: the page shows {now['op']!r}, not its op {expected_op!r}"
            if now["stage"] == "forward" and node in output_of:
                layer = output_of[node]
                assert now["value"] == f"value {numbers['outputs'][layer]}", \
                    f"layer {layer} forward: page {now['value']!r}, nabla explain {numbers['outputs'][layer]!r}"
                seen_forward.add(layer)
                if layer == "0" and "forward" not in shot:
                    browser.wait_for("document.querySelectorAll('#step-values canvas').length > 0", 10,
                                     "the first convolution's feature maps")
                    browser.screenshot(os.path.join(out_dir, "step-forward.png"))
                    shot.add("forward")
            if now["stage"] == "loss":
                assert now["loss"] == numbers["loss"], f"loss: page {now['loss']!r}, nabla explain {numbers['loss']!r}"
                if "loss" not in shot:
                    browser.screenshot(os.path.join(out_dir, "step-loss.png"))
                    shot.add("loss")
            if now["stage"] == "backward" and node in output_of:
                layer = output_of[node]
                assert now["grad"] == f"G = dL/d(this) {numbers['deltas'][layer]}", \
                    f"layer {layer} backward: page {now['grad']!r}, nabla explain {numbers['deltas'][layer]!r}"
                seen_backward.add(layer)
                if node == first_conv:
                    break
            press(browser, "ArrowRight")
        every = {str(layer["index"]) for layer in layers}
        assert seen_forward == every, f"forward never showed layers {every - seen_forward}"
        assert seen_backward == every, f"backward never reached layers {every - seen_backward}"
        browser.wait_for("!document.getElementById('step-detail').textContent.includes('checking')", 60,
                         "the finite-difference checks")
        browser.screenshot(os.path.join(out_dir, "step-backward.png"))
        # the update: the loss on this example falls, as nabla explain says
        browser.evaluate("document.querySelector('#step-stages button[data-stage=update]').click()")
        now = moment(browser)
        assert now["stage"] == "update"
        assert f"{numbers['before']} → {numbers['after']} (lower)" in now["after"], \
            f"update: page {now['after']!r}, nabla explain {numbers['before']} → {numbers['after']}"
        browser.screenshot(os.path.join(out_dir, "step-update.png"))
        # a URL names a moment: the backward step at the first convolution
        target = f"{served.url.split('#')[0]}#step/mnist-cnn.toml/0/backward/{first_conv}"
        browser.call("Page.navigate", url="about:blank")
        browser.call("Page.navigate", url=target)
        browser.wait_for(f"document.getElementById('step-card').dataset.node === '{first_conv}'"
                         " && document.getElementById('step-card').dataset.stage === 'backward'", 60,
                         "the moment the URL names")
    finally:
        served.close(browser)


def spirals(browser, nabla, out_dir):
    served = Served(nabla, "examples/spirals.toml")
    try:
        browser.call("Page.navigate", url=served.url)
        browser.wait_for("document.getElementById('step-card').dataset.stage === 'forward'", 60,
                         "the spirals step view")
        browser.evaluate("document.querySelector('#step-stages button[data-stage=backward]').click()")
        browser.wait_for("!document.getElementById('step-network').hidden", 10, "the network drawing")
        time.sleep(0.5)  # the weights are fetched before the lines are drawn
        # the window as a person has it (a screenshot stretches it over the whole page)
        browser.call("Emulation.clearDeviceMetricsOverride")
        browser.evaluate("document.getElementById('step-network').scrollIntoView({block: 'center'})")
        # the weight of the second linear layer (layer 2) from unit 5 to unit 3
        point = browser.evaluate("window.stepView.weightPoint(2, 3, 5)")
        assert point, "no pixel of the drawing picks the weight W[3][5] of layer 2"
        under = browser.evaluate(f"(document.elementFromPoint({point['x']}, {point['y']}) || {{}}).id")
        assert under == "step-network", f"the point {point} is on {under!r}, not the network drawing"
        for kind in ["mousePressed", "mouseReleased"]:
            browser.call("Input.dispatchMouseEvent", type=kind, x=point["x"], y=point["y"],
                         button="left", clickCount=1)
        browser.wait_for("document.getElementById('step-derivation').dataset.grad !== undefined", 10,
                         "the clicked weight's derivation")
        text = browser.evaluate("document.getElementById('step-derivation').textContent")
        assert "δ_3 · a_5" in text, f"the derivation of W[3][5] is not shown: {text!r}"
        delta, activation, grad = (float(browser.evaluate(
            f"document.getElementById('step-derivation').dataset.{key}")) for key in ["delta", "activation", "grad"])
        assert abs(delta * activation - grad) <= 1e-12 * max(1.0, abs(grad)), \
            f"δ·a = {delta * activation} but backpropagation gave {grad}"
        browser.screenshot(os.path.join(out_dir, "step-weight.png"))
    finally:
        served.close(browser)


def gpt(browser, nabla):
    served = Served(nabla, "examples/shakespeare-char.toml")
    try:
        browser.call("Page.navigate", url=served.url)
        browser.wait_for("document.getElementById('step-card').dataset.stage === 'forward'", 60,
                         "the GPT's step view")
        nodes = browser.evaluate("window.stepView.step.trace.nodes.length")
        load_ms = int(browser.evaluate("document.getElementById('step-card').dataset.loadMs"))
        rows = browser.evaluate("document.querySelectorAll('.step-node').length")
        print(f"GPT: {nodes} nodes, step view loaded in {load_ms} ms, {rows} node rows shown")
        assert nodes > 100, f"a GPT window should record over a hundred nodes, not {nodes}"
        assert load_ms < 2000, f"the GPT's step view took {load_ms} ms to load"
        assert rows < nodes / 4, "a large graph is shown by layer, closed"
        browser.evaluate("document.querySelector('.step-group[data-group=\"3\"]').click()")
        opened = browser.evaluate("document.querySelectorAll('.step-node').length")
        assert opened > rows, "clicking a layer opens it"
    finally:
        served.close(browser)


def main():
    nabla, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    profile = tempfile.mkdtemp()
    browser = Browser(profile)
    try:
        lenet(browser, nabla, out_dir)
        spirals(browser, nabla, out_dir)
        gpt(browser, nabla)
        errors = browser.errors()
        assert not errors, f"the page reported errors: {errors}"
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"step view browser test passed; screenshots in {out_dir}")


if __name__ == "__main__":
    main()
