"""The web app driven by headless Chromium: upload a corpus picture, wait for the result, screenshot it.

    .venv/bin/python bench/app_screenshot.py --checkpoint runs/demo/ppo/final --corpus runs/demo/corpus
        [--split test] [--index 0] [--out docs/app.png] [--json bench/results/app_screenshot.json]
        [--app_args "--k 4"]

Starts ``python -m rl.app`` as a user would (its defaults, on a free port of 127.0.0.1), waits
until it answers, then drives Debian's ``chromium`` over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no websocket library and no browser download): it opens the page,
sets the picture on the iso view's file input (``DOM.setFileInputFiles``: the page uploads it
as it would a file a user picked), clicks "Write the program", waits for the status and saves
a screenshot of the whole page. Writes the figures of the run as JSON: seconds to start the app,
from setting the file to the page showing it uploaded, from the click to the result, and from
the upload to the result; the stages the progress bar showed; the status line.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402
from bench.screenshot import FLAGS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DONE = ("Valid program", "No valid program", "Upload refused", "cannot run here")
"""Status texts of a finished request (the page shows Markdown rendered: no asterisks)."""
STAGES = ("checking the upload", "writing", "rendering", "refining", "writing the files")
"""Words of the progress bar's stages (:func:`rl.predict.infer`, :mod:`rl.app_service`)."""


class DevTools:
    """Chromium's DevTools protocol over ``--remote-debugging-pipe``: JSON messages ending in NUL,
    commands on the browser's fd 3, answers and events on its fd 4."""

    def __init__(self, binary: str, profile: str):
        to_browser_read, self._to_browser = _high(os.pipe())
        self._from_browser, from_browser_write = _high(os.pipe())
        # bash puts the pipe ends at fds 3 and 4 and then becomes chromium
        command = (f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write} '
                   f"{to_browser_read}<&- {from_browser_write}>&-")
        self.process = subprocess.Popen(
            ["bash", "-c", command, binary, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "--enable-unsafe-swiftshader", "about:blank"],
            pass_fds=(to_browser_read, from_browser_write), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._answers: dict[int, dict] = {}
        self._arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._arrived:
                for message in messages:
                    data = json.loads(message)
                    if "id" in data:
                        self._answers[data["id"]] = data
                self._arrived.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float = 60) -> dict:
        """The result of one command; ``RuntimeError`` with the browser's message if it failed."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._next_id in self._answers, timeout_s):
                raise TimeoutError(f"no answer to {method} in {timeout_s} s")
            answer = self._answers.pop(self._next_id)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout_s=10)
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The two fds moved to numbers >= 10, so that placing the browser's ends at 3 and 4 cannot
    clobber one of them."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved


class Page:
    """One tab of a :class:`DevTools` browser."""

    def __init__(self, tools: DevTools, width: int, height: int):
        self.tools = tools
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.size(width, height)

    def send(self, method: str, params: dict | None = None, timeout_s: float = 60) -> dict:
        return self.tools.send(method, params, self.session, timeout_s)

    def size(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def evaluate(self, expression: str):
        answer = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, every_s: float = 0.1, on_poll=None):
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            value = self.evaluate(expression)
            if on_poll:
                on_poll()
            if value:
                return value
            time.sleep(every_s)
        raise TimeoutError(f"still false after {timeout_s} s: {expression}")

    def set_file(self, selector: str, path: str) -> None:
        root = self.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        if not node:
            raise RuntimeError(f"no element {selector!r} on the page")
        self.send("DOM.setFileInputFiles", {"files": [path], "nodeId": node})

    def screenshot(self, path: str, width: int) -> None:
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.size(width, height)
        time.sleep(1.0)  # let the 3-D preview redraw at the new size
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(checkpoint: str, port: int, extra: list[str], timeout_s: float, log_path: str):
    """``python -m rl.app`` in its own session; ``(process, seconds until it answered)``."""
    started = time.perf_counter()
    log = open(log_path, "w")
    command = [sys.executable, "-m", "rl.app", "--checkpoint", checkpoint, "--port", str(port), *extra]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"rl.app exited with {process.returncode}: see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return process, time.perf_counter() - started
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"rl.app did not answer in {timeout_s} s: see {log_path}")


def stop_app(process: subprocess.Popen) -> None:
    """Ctrl-C first (gradio closes, the render pool stops, Ray shuts down), then the whole group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def corpus_picture(corpus: str, split: str, index: int, folder: str) -> str:
    from corpus.dataset import load

    row = load(corpus, split)[index]
    path = os.path.join(folder, f"{split}_{index:04d}_{row['family']}.png")
    row["image"].save(path)
    return path


def drive(url: str, picture: str, out_png: str, width: int, timeout_s: float) -> dict:
    """Upload ``picture`` on the page at ``url``, wait for the result, screenshot; the figures."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise RuntimeError("chromium not found: apt-get install -y chromium")
    name = os.path.basename(picture)
    with tempfile.TemporaryDirectory() as profile:
        tools = DevTools(binary, profile)
        try:
            page = Page(tools, width, 1000)
            page.send("Page.navigate", {"url": url})
            page.wait_for("!!document.querySelector('#picture_iso input[type=file]')", 60)
            seen: set[str] = set()

            def progress() -> None:
                text = page.evaluate("document.body.innerText") or ""
                seen.update(stage for stage in STAGES if stage in text)

            upload = time.perf_counter()
            page.set_file("#picture_iso input[type=file]", picture)
            shown = f"document.querySelector('#picture_iso').innerText.includes({json.dumps(name)})"
            page.wait_for(shown, 60)
            uploaded = time.perf_counter()
            page.evaluate("document.querySelector('#run').click()")
            done = " || ".join(f"text.includes({json.dumps(word)})" for word in DONE)
            status = page.wait_for(f"(() => {{ const text = document.querySelector('#status').innerText; "
                                   f"return ({done}) ? text : ''; }})()", timeout_s, on_poll=progress)
            result = time.perf_counter()
            page.wait_for("!!document.querySelector('canvas')", 20)  # the 3-D preview
            time.sleep(2.0)
            page.screenshot(out_png, width)
        finally:
            tools.close()
    reported = re.search(r"; ([\d.]+) s\.", status)
    return {"seconds_file_set_to_uploaded": round(uploaded - upload, 3),
            "seconds_click_to_result": round(result - uploaded, 3),
            "seconds_upload_to_result": round(result - upload, 3),
            "seconds_server_reported": float(reported.group(1)) if reported else None,
            "progress_stages_seen": [stage for stage in STAGES if stage in seen],
            "status_first_line": status.strip().splitlines()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/demo/ppo/final", help="policy folder the app serves")
    parser.add_argument("--corpus", default="runs/demo/corpus", help="corpus the picture comes from")
    parser.add_argument("--split", default="test", help="corpus split of the picture")
    parser.add_argument("--index", type=int, default=0, help="row of the picture in the split")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "app.png"), help="screenshot PNG")
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "app_screenshot.json"),
                        help="figures of the run")
    parser.add_argument("--width", type=int, default=1280, help="browser width in pixels")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the result")
    parser.add_argument("--app_args", default="", help="more options for python -m rl.app, one string")
    args = parser.parse_args(argv)
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        picture = corpus_picture(args.corpus, args.split, args.index, folder)
        log_path = os.path.join(folder, "app.log")
        process, start_s = start_app(os.path.abspath(args.checkpoint), port, args.app_args.split(), 180,
                                     log_path)
        try:
            figures = drive(f"http://127.0.0.1:{port}/", picture, args.out, args.width, args.timeout)
        finally:
            stop_app(process)
    browser = subprocess.run([shutil.which("chromium") or "chromium", "--version"], capture_output=True,
                             text=True).stdout.strip()
    figures = {"app_start_s": round(start_s, 3), **figures, "checkpoint": args.checkpoint,
               "picture": f"{args.split}[{args.index}] of {args.corpus} ({os.path.basename(picture)})",
               "app_args": args.app_args, "cpu_count": os.cpu_count(),
               "screenshot": os.path.relpath(args.out, ROOT), "browser": browser}
    print(json.dumps(figures, indent=2))
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
