"""The dashboard tested as a person would: a real (headless) Chromium loads the page
while `nabla train examples/spirals.toml --dashboard` runs, waits for the stream, and
checks that the curves have points, that the decision regions change while the
network learns, and that the page logs no errors. Screenshots go to OUT_DIR.

    python tests/browser/dashboard.py NABLA_BINARY OUT_DIR

Needs Chromium (Debian: `chromium`) and the `websocket-client` package; .ci/run
installs both, or skips this test with a message when it cannot. Drives the browser
through the DevTools protocol directly, so nothing else (no Selenium, no driver) is needed.
"""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import queue
import time
import urllib.request

import websocket


class Browser:
    """A headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            raise RuntimeError("no chromium on PATH")
        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "--window-size=1300,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        deadline = time.time() + 60
        while port is None and time.time() < deadline:
            line = self.process.stderr.readline()
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = found and int(found.group(1))
        if port is None:
            raise RuntimeError("chromium did not start its DevTools server")
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(p for p in pages if p["type"] == "page")
        self.socket = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []
        for domain in ["Page", "Runtime", "Log"]:
            self.call(f"{domain}.enable")

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, seconds, what):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if self.evaluate(expression):
                    return
            except RuntimeError:
                pass  # the page is still loading
            time.sleep(0.2)
        raise AssertionError(f"timed out after {seconds} s waiting for {what}")

    def screenshot(self, path):
        height = self.evaluate("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", width=1300, height=height,
                  deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def errors(self):
        """Console errors, uncaught exceptions and failed loads the page reported."""
        self.evaluate("1")  # drain pending events
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                exception = details.get("exception", {}).get("description", "")
                found.append(f"{details.get('text', 'exception')} {exception}".strip())
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value")) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found

    def close(self):
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def main():
    nabla, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    run_dir = os.path.join(out_dir, "spirals")
    shutil.rmtree(run_dir, ignore_errors=True)
    # long enough to watch: the page must catch the run while it learns
    training = subprocess.Popen(
        [nabla, "train", "examples/spirals.toml", "--out", run_dir, "--epochs", "2500",
         "--dashboard", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True)
    lines = queue.Queue()
    # read everything it prints, so it never blocks on a full pipe
    threading.Thread(target=lambda: [lines.put(l) for l in training.stdout], daemon=True).start()

    def wait_for_line(pattern, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                found = re.search(pattern, lines.get(timeout=1))
            except queue.Empty:
                continue
            if found:
                return found
        raise AssertionError(f"nabla train printed no line matching {pattern!r} in {seconds} s")

    url = wait_for_line(r"dashboard: (http://\S+)", 60).group(1)
    print(f"dashboard at {url}")

    profile = tempfile.mkdtemp()
    browser = Browser(profile)
    try:
        browser.call("Page.navigate", url=url)
        browser.wait_for("Number(document.getElementById('loss').dataset.points) > 0", 60,
                         "the loss curve's first points")
        assert browser.evaluate("document.getElementById('status').textContent").find("training") >= 0, \
            "the page should say the run is training"
        regions = "document.getElementById('regions')"
        browser.wait_for("!document.getElementById('regions-card').hidden", 10, "the decision regions")
        # opened mid-run, the page first replays the frames so far; then it follows the run
        browser.wait_for(f"{regions}.dataset.frame == {regions}.dataset.frames - 1", 30,
                         "the replay to catch up with the run")
        first, first_frames = browser.evaluate(f"[{regions}.toDataURL(), Number({regions}.dataset.frames)]")
        browser.screenshot(os.path.join(out_dir, "dashboard-training.png"))
        # new frames every epoch or few; wait for some, however busy the machine is
        browser.wait_for(f"Number({regions}.dataset.frames) > {first_frames} + 5", 30,
                         "new decision-region frames while training")
        second, second_frames = browser.evaluate(f"[{regions}.toDataURL(), Number({regions}.dataset.frames)]")
        assert first != second, "the decision regions did not change while the network learned"
        for chart in ["loss", "accuracy", "lr", "grad-norms"]:
            points = browser.evaluate(f"Number(document.getElementById('{chart}').dataset.points)")
            assert points > 0, f"the {chart} chart has no points"
        assert browser.evaluate("document.querySelectorAll('#histograms canvas').length") == 6, \
            "one histogram per parameter (3 linear layers × weight, bias)"

        # wait for the end; the server keeps serving the finished run
        wait_for_line("keeps serving", 300)
        browser.wait_for("document.getElementById('status').className === 'finished'", 30,
                         "the page to say the run finished")
        accuracy = browser.evaluate("document.getElementById('status').textContent")
        print(f"status line: {accuracy}")
        browser.screenshot(os.path.join(out_dir, "dashboard-finished.png"))
        errors = browser.errors()
        assert not errors, f"the page reported errors: {errors}"
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
        training.send_signal(signal.SIGINT)
        training.wait(timeout=30)
    assert training.returncode == 0, f"nabla train exited with {training.returncode}"
    print(f"dashboard browser test passed; screenshots in {out_dir}")


if __name__ == "__main__":
    main()
