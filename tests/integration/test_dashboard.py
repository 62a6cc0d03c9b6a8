"""The dashboard (issue 14), rendered by headless Chromium (Debian's `chromium`) while a
resize runs under load, with API keys on: the ranks with the joiner, the state "resizing",
the expert-placement heat map, the time series; then after the resize, the resize in the
table and the events. Without the key the page asks for one and shows nothing.

EBB_DASHBOARD_SCREENSHOT=PATH copies the screenshot taken during the resize to PATH (the
one in docs/dashboard.png)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openai import OpenAI

from conftest import running_server
from test_elastic import ELASTIC

USER = {"Authorization": "Bearer user-key"}
ADMIN = {"Authorization": "Bearer admin-key"}
FLAGS = ["--data-parallel-size", "1", *ELASTIC, "--enable-eplb", "--eplb-step-interval", "8",
         "--api-key", "user-key", "--admin-api-key", "admin-key"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is missing (scripts/install-deps.sh installs it with EBB_NEED_BROWSER=1)")
    pytest.skip("no chromium on this machine")


class Elements(HTMLParser):
    """Every element's attributes by id, the rows of each table body, and list items."""

    def __init__(self):
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.text: dict[str, str] = {}
        self._table: str | None = None
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if "id" in a:
            self.by_id[a["id"]] = a
            self._open.append(a["id"])
        if tag == "table" and "id" in a:
            self._table = a["id"]
        if tag == "tr" and self._table and "data-state" in a or (tag == "tr" and "data-outcome" in a):
            self.rows.setdefault(self._table or "", []).append(a)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        for i in self._open[-1:]:
            self.text[i] = self.text.get(i, "") + data


def render(browser: str, url: str, work: Path, name: str, screenshot: bool) -> Elements:
    """Loads `url`, lets its script poll for a few (virtual) seconds, and returns the DOM."""
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
              "--no-first-run", "--window-size=1400,1250", "--virtual-time-budget=4000",
              f"--user-data-dir={work / ('profile-' + name)}"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0 and "<html" in dom.stdout, f"chromium failed: {dom.stderr[-2000:]}"
    if screenshot:
        png = work / f"{name}.png"
        shot = subprocess.run([*common, f"--screenshot={png}", url], capture_output=True, text=True, timeout=180)
        assert shot.returncode == 0 and png.exists() and png.stat().st_size > 10_000, f"no screenshot: {shot.stderr[-2000:]}"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    parser = Elements()
    parser.feed(dom.stdout)
    return parser


def timeline(server) -> dict:
    r = server.request("GET", "/dashboard/data", timeout=10, headers=USER)
    assert r.status == 200, r.text
    return r.json()["timeline"]


def status(server) -> dict:
    r = server.request("GET", "/elastic_ep/status", timeout=10, headers=USER)
    assert r.status == 200, r.text
    return r.json()


def test_dashboard_renders_a_resize_under_load(start_server, tmp_path):
    browser = chromium()
    os.environ["EBB_FAULT"] = "pause.warmup=15@2"  # the resize to generation 2 holds its warmup: time to look
    try:
        server_cm = running_server(start_server, "builtin:tiny-moe", *FLAGS)
        server = server_cm.__enter__()
    finally:
        del os.environ["EBB_FAULT"]
    try:
        client = OpenAI(base_url=server.url("/v1"), api_key="user-key", timeout=120, max_retries=0)
        stop = threading.Event()
        errors: list[str] = []
        done = [0]

        def worker(w: int):
            while not stop.is_set():
                try:
                    for _ in client.completions.create(model="builtin:tiny-moe", prompt=f"dashboard {w}", max_tokens=32,
                                                       temperature=0, stream=True, extra_body={"ignore_eos": True}):
                        pass
                    done[0] += 1
                except Exception as e:  # noqa: BLE001 - every failure is asserted on
                    errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(6)]
        for t in threads:
            t.start()
        # EPLB decides every 8 steps: wait for its first load numbers (the heat map).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not status(server)["placement"]["slot_load"]:
            time.sleep(0.5)
        placement = status(server)["placement"]
        assert placement["slot_load"], f"EPLB never reported its load: {placement}"
        # The timeline samples once a second: wait for three before the page is checked.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(timeline(server)["samples"]) < 3:
            time.sleep(0.5)

        url = server.url("/dashboard") + "#key=user-key"
        locked = render(browser, server.url("/dashboard"), tmp_path, "no-key", screenshot=False)
        assert "show" in locked.by_id["keyform"].get("class", ""), "without a key the page must ask for one"
        assert locked.by_id["generation"]["data-value"] == "", "without a key the page must show no data"

        r = server.request("POST", "/scale_elastic_ep", {"new_data_parallel_size": 2, "wait": False}, headers=ADMIN)
        assert r.status == 202, r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not status(server)["is_scaling"]:
            time.sleep(0.2)
        assert status(server)["is_scaling"]

        during = render(browser, url, tmp_path, "during-resize", screenshot=True)
        still_scaling = status(server)["is_scaling"]
        assert during.by_id["state"]["data-value"] == "resizing", during.by_id["state"]
        assert still_scaling, "the resize ended before the page was checked: the checks above saw a stale state"
        assert during.by_id["generation"]["data-value"] == "1"
        states = sorted(row["data-state"] for row in during.rows.get("ranks", []))
        assert states == ["joining", "serving"], states
        heat = during.by_id["heatmap"]
        assert int(heat["data-layers"]) == len(placement["slot_load"]) and int(heat["data-slots"]) == len(placement["slot_load"][0]), heat
        assert int(during.by_id["throughput"]["data-samples"]) >= 3, during.by_id["throughput"]
        assert int(during.by_id["latency"]["data-samples"]) >= 3
        if os.environ.get("EBB_DASHBOARD_SCREENSHOT"):
            shutil.copy(tmp_path / "during-resize.png", os.environ["EBB_DASHBOARD_SCREENSHOT"])

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (status(server)["is_scaling"] or status(server)["generation"] != 2):
            time.sleep(0.5)
        time.sleep(1.5)  # one more timeline sample with the resize noted
        after = render(browser, url, tmp_path, "after-resize", screenshot=False)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        assert after.by_id["state"]["data-value"] == "serving"
        assert after.by_id["generation"]["data-value"] == "2"
        assert after.by_id["rank-count"]["data-value"] == "2"
        assert int(after.by_id["resizes"]["data-rows"]) >= 1
        assert [row["data-outcome"] for row in after.rows.get("resizes", [])][:1] == ["committed"]
        assert int(after.by_id["events"]["data-count"]) >= 1
        assert re.search(r"1→2", after.text.get("events", "")), after.text.get("events")
        assert not errors, f"{len(errors)} requests failed: {errors[:3]}"
        assert done[0] > 0
        server.assert_alive()
    finally:
        server_cm.__exit__(None, None, None)
