"""The web leaderboard: written by `leaderboard`, self-contained, and sortable in a real browser
(headless Chromium driven over the DevTools protocol: a real mouse click on a header)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from tests.test_leaderboard import N_USERS, write_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    # three models whose Recall@10 order differs from their alphabetical order
    for seed in (0, 1):
        write_run(tmp_path, "alpha", seed, [12] * N_USERS)  # outside the top 10
        write_run(tmp_path, "beta", seed, [1] * N_USERS)
        write_run(tmp_path, "gamma", seed, [5] * (N_USERS // 2) + [0] * (N_USERS // 2))
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--no-figures"]) == 0
    return tmp_path / "site" / "index.html"


def test_the_page_is_self_contained_and_links_cells_to_runs(site: Path):
    page = site.read_text()
    # nothing is loaded from outside the folder: no remote or absolute URLs in src/href
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert all(not s.startswith(("http:", "https:", "//", "/")) for s in sources), sources
    assert '<table class="sortable"' in page and "<script>" in page
    anchors = set(re.findall(r'id="([^"]+)"', page))
    cell_links = re.findall(r'<a href="#([^"]+)">0\.', page)
    assert cell_links and set(cell_links) <= anchors  # every cell's link has its target
    records = re.findall(r'<a href="(\.\./runs/[^"]+)">run ', page)
    assert len(records) == 6 and all((site.parent / r).resolve().exists() for r in records)


def test_failed_runs_outside_every_table_are_listed_and_escaped(tmp_path: Path):
    write_run(tmp_path, "alpha", 0)
    write_run(tmp_path, "lost", 0, status="failed", error="<img src=x onerror=alert(1)>",
              fingerprint="other")  # fmt: skip
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--no-figures"]) == 0
    page = (tmp_path / "site" / "index.html").read_text()
    assert "Runs outside every table" in page and "lost on toy seed 0" in page
    assert "<img src=x" not in page and "&lt;img src=x" in page


class DevTools:
    """The smallest DevTools-protocol client: one browser, one page session."""

    def __init__(self, chromium: str, profile: Path):
        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        for _ in range(200):
            if port_file.exists() and len(port_file.read_text().split()) == 2:
                break
            time.sleep(0.05)
        port, path = port_file.read_text().split()
        from websockets.sync.client import connect

        self.socket = connect(f"ws://127.0.0.1:{port}{path}", max_size=None)
        self.ids = itertools.count(1)
        self.session: str | None = None

    def call(self, method: str, **params):
        message = {"id": next(self.ids), "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv(timeout=30))
            if reply.get("id") == message["id"]:
                assert "error" not in reply, reply
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        # the new tab starts on about:blank (already "complete"): wait for our page, parsed
        # and its inline script run (images may still be loading)
        ready = f"location.href === {json.dumps(url)} && document.readyState !== 'loading'"
        for _ in range(400):
            if self.js(ready):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{url} did not load")

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        self.socket.close()
        self.process.kill()
        self.process.wait()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
def test_clicking_a_header_sorts_the_table_in_chromium(site: Path, tmp_path: Path):
    browser = DevTools(CHROMIUM, tmp_path / "chromium-profile")
    try:
        browser.open(site.as_uri())
        order = "Array.from(document.querySelector('table.sortable').tBodies[0].rows)" + (
            ".map(r => r.cells[0].textContent)"
        )
        assert browser.js(order) == ["alpha", "beta", "gamma"]
        header = browser.js(
            "(() => { const th = Array.from(document.querySelectorAll('table.sortable th'))"
            ".find(h => h.textContent.trim() === 'Recall@10');"
            " const r = th.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];"
            " })()"
        )
        browser.click(*header)
        assert browser.js(order) == ["alpha", "gamma", "beta"]  # ascending Recall@10
        browser.click(*header)
        assert browser.js(order) == ["beta", "gamma", "alpha"]  # descending
    finally:
        browser.close()


def test_the_page_tests_each_method_against_what_it_builds_on(tmp_path: Path):
    for seed in (0, 1):
        write_run(tmp_path, "tiger", seed, [12] * N_USERS)
        write_run(tmp_path, "letter<b>", seed, [1] * N_USERS)  # a label: no base, escaped
        write_run(tmp_path, "letter", seed, [1] * N_USERS)
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--no-figures"]) == 0
    page = (tmp_path / "site" / "index.html").read_text()
    section = page[page.index("Against what each method builds on") :]
    assert "<td>letter</td><td>tiger</td><td>Recall@10</td><td>2</td>" in section
    assert "<strong>" in section and "2/2" in section and "<b>" not in page
