"""A real report in headless Chromium: no console errors, no network, every chart drawn,
the sample browser filters and sorts, hostile outputs stay text; saves a screenshot.

Driven over the Chrome DevTools protocol (websocket-client). Skipped when Chromium is not
installed (CI installs Debian's: `apt-get install -y chromium`). Set HARNESS_SCREENSHOT_DIR
to keep the screenshots.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from harness.results import read_jsonl
from report_fixtures import make_diagnosed_run, make_report_run
from reports import render_report

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (CI: apt-get install -y chromium)"),
]
websocket = pytest.importorskip("websocket", reason="websocket-client not installed: pip install -e '.[test]'")


class Browser:
    """Just enough of the DevTools protocol: send a command, collect events, evaluate JS."""

    def __init__(self, profile: Path):
        self.log = open(profile.parent / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--remote-allow-origins=*", "--window-size=1400,1000", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start; see {self.log.name}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def open(self, path: Path) -> None:
        self.events.clear()
        self.send("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str):
        got = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in got:
            raise AssertionError(f"page JS failed: {got['exceptionDetails']}")
        return got["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions (CSP violations included) and requests
        for anything other than the file itself."""
        self.send("Runtime.evaluate", expression="0")   # flush events queued before this point
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails']}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Network.requestWillBeSent" and not p["request"]["url"].startswith(("file:", "data:")):
                out.append(f"network request: {p['request']['url']}")
        return out

    def screenshot(self, path: Path) -> Path:
        height = min(8000, int(self.js("document.documentElement.scrollHeight")))
        self.send("Emulation.setDeviceMetricsOverride", width=1400, height=height, deviceScaleFactor=1, mobile=False)
        shot = self.send("Page.captureScreenshot", format="png")
        self.send("Emulation.clearDeviceMetricsOverride")
        path.write_bytes(base64.b64decode(shot["data"]))
        if os.environ.get("HARNESS_SCREENSHOT_DIR"):
            keep = Path(os.environ["HARNESS_SCREENSHOT_DIR"])
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, keep / path.name)
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium") / "profile")
    yield b
    b.close()


CHARTS_DRAWN = """
Array.from(document.querySelectorAll('figure.chart')).map(function (f) {
  var svg = f.querySelector('svg');
  if (!svg) { return f.getAttribute('data-chart') + ': no svg'; }
  var box = svg.getBoundingClientRect();
  if (box.width < 100 || box.height < 60) { return f.getAttribute('data-chart') + ': empty box'; }
  if (svg.querySelectorAll('path, text, image').length < 10) { return f.getAttribute('data-chart') + ': nothing drawn'; }
  if (!svg.querySelector('text')) { return f.getAttribute('data-chart') + ': no text'; }
  // text is text (svg.fonttype none): in the browser's own font it must still lie inside the chart
  var out = Array.from(svg.querySelectorAll('text')).filter(function (t) {
    var r = t.getBoundingClientRect();
    return r.width > 0 && (r.left < box.left - 2 || r.right > box.right + 2 || r.top < box.top - 2 || r.bottom > box.bottom + 2);
  });
  if (out.length) { return f.getAttribute('data-chart') + ': text outside: ' + out.map(function (t) { return t.textContent; }).join('|'); }
  var broken = Array.from(svg.querySelectorAll('use')).filter(function (u) {
    var ref = (u.getAttribute('xlink:href') || u.getAttribute('href') || '').slice(1);
    return !svg.querySelector('[id="' + ref + '"]');
  });
  return broken.length ? f.getAttribute('data-chart') + ': ' + broken.length + ' dangling glyph refs' : 'ok';
})
"""


def _visible(b: Browser) -> int:
    return int(b.js("document.getElementById('sample-browser').getAttribute('data-visible')"))


def _set(b: Browser, element: str, prop: str, value, event: str) -> None:
    b.js(f"(function () {{ var el = document.getElementById({json.dumps(element)}); "
         f"el.{prop} = {json.dumps(value)}; el.dispatchEvent(new Event({json.dumps(event)})); }})()")


def test_report_in_chromium(browser, tmp_path):
    run = make_report_run(tmp_path / "run", epochs=3, n=60)
    browser.open(render_report([run]))
    assert browser.js("document.getElementById('sample-browser').getAttribute('data-ready')") == "1"
    charts = browser.js(CHARTS_DRAWN)
    assert len(charts) == 11 and set(charts) == {"ok"}, charts

    # default view: en-fr, bleu, epoch 3 vs epoch 0, worst change first
    rows3 = read_jsonl(run / "samples/tiny-translator/epoch-3/en-fr.jsonl")
    rows0 = {r["id"]: r for r in read_jsonl(run / "samples/tiny-translator/epoch-0/en-fr.jsonl")}
    deltas = {r["id"]: round(r["scores"]["bleu"], 2) - round(rows0[r["id"]]["scores"]["bleu"], 2) for r in rows3}
    assert _visible(browser) == 60
    first = browser.js("document.querySelector('#s-rows tr').getAttribute('data-id')")
    assert deltas[first] == min(deltas.values())

    _set(browser, "s-worse", "checked", True, "change")
    worse = sum(d < 0 for d in deltas.values())
    assert 0 < worse < 60 and _visible(browser) == worse
    shown = browser.js("Array.from(document.querySelectorAll('#s-rows tr')).map(r => r.getAttribute('data-id'))")
    assert all(deltas[i] < 0 for i in shown)

    _set(browser, "s-worse", "checked", False, "change")
    _set(browser, "s-filter", "value", "EN-FR-00042", "input")        # case-insensitive substring
    assert _visible(browser) == 1
    assert browser.js("document.querySelector('#s-rows td').textContent") == "en-fr-00042"

    _set(browser, "s-filter", "value", "", "input")
    bleu3 = {r["id"]: round(r["scores"]["bleu"], 2) for r in rows3}
    _set(browser, "s-max", "value", "20", "input")                     # score at epoch 3 at most 20
    assert _visible(browser) == sum(v <= 20 for v in bleu3.values()) > 0
    _set(browser, "s-max", "value", "", "input")

    _set(browser, "s-set", "value", "1", "change")                     # the other task
    assert browser.js("document.querySelector('#s-rows tr').getAttribute('data-id')").startswith("fr-en-")

    assert browser.problems() == []
    shot = browser.screenshot(tmp_path / "report.png")
    assert shot.stat().st_size > 50_000


def test_hostile_report_in_chromium(browser, tmp_path):
    attacks = ["<script>window.__pwned = 1</script>", "</textarea><img src=x onerror=\"window.__pwned=2\">",
               "</script><script>window.__pwned = 3</script>", "<svg onload=\"window.__pwned=4\">"]

    def hostile(task, epoch, i, out):
        return attacks[i % len(attacks)] if i < 8 else out

    def names(results):
        results["models"][0]["name"] = "<img src=x onerror=\"window.__pwned=5\">"

    run = make_report_run(tmp_path / "run", epochs=1, n=12, output_hook=hostile, results_hook=names)
    browser.open(render_report([run]))
    assert browser.js("typeof window.__pwned") == "undefined"
    assert browser.js("document.querySelectorAll('img, textarea, main script, #s-rows svg').length") == 0
    cells = browser.js("Array.from(document.querySelectorAll('#s-rows td.out-a')).map(td => td.textContent)")
    assert set(attacks) <= set(cells)
    assert browser.js("document.querySelector('.card h3').textContent") == "<img src=x onerror=\"window.__pwned=5\">"
    assert browser.problems() == []
    browser.screenshot(tmp_path / "report-hostile.png")


def test_regression_link_opens_its_sample(browser, tmp_path):
    run = make_diagnosed_run(tmp_path / "run")
    browser.open(render_report([run]))
    link = browser.js("(function () { var a = document.querySelector('a.sample-link'); "
                      "return {href: a.getAttribute('href'), id: a.textContent}; })()")
    _, _, _, item = link["href"].split("/", 3)
    assert item == link["id"]
    _set(browser, "s-filter", "value", "no such text", "input")          # a filter in place is set aside
    assert _visible(browser) == 0
    browser.js("document.querySelector('a.sample-link').click()")
    root = "document.getElementById('sample-browser')"
    assert browser.js(f"{root}.getAttribute('data-focus')") == link["id"]
    assert _visible(browser) == 1
    assert browser.js("document.querySelector('#s-rows tr').getAttribute('data-id')") == link["id"]
    assert browser.js("document.querySelector('#s-rows tr').classList.contains('focus')")
    set_index, epoch, metric = link["href"][len("#sample="):].split("/")[:3]
    assert browser.js("document.getElementById('s-set').value") == set_index
    assert browser.js("document.getElementById('s-head-a').textContent") == f"output @ epoch {epoch}"
    assert browser.js("document.getElementById('s-head-b').textContent") == "output @ epoch 0"
    assert browser.js("document.getElementById('s-metric').selectedOptions[0].textContent").startswith(metric)
    # typing in the filter shows the other rows again
    _set(browser, "s-filter", "value", "", "input")
    assert browser.js(f"{root}.getAttribute('data-focus')") == "" and _visible(browser) > 1
    assert browser.problems() == []
