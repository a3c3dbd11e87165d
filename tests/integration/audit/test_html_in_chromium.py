"""The HTML report as a compliance officer's browser shows it: loaded from the file in headless Chromium (Debian's
chromium package, `make tools`), with no network, and the rendered numbers read back from the DOM."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from services.audit.evidence import Evidence
from services.audit.html import render_html
from services.audit.report import build_report
from tests.unit.audit.evidence_story import DIGEST, story


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: `make tools` installs Debian's chromium package (make test does)"
    return found


def rendered_dom(page: Path, profile: Path) -> str:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root (CI containers)
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9",  # any attempt to reach the network fails
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def shown(dom: str, testid: str) -> str:
    match = re.search(rf'data-testid="{re.escape(testid)}"[^>]*>([^<]*)<', dom)
    assert match, f"{testid} not rendered"
    return match.group(1).strip()


def test_the_report_renders_in_chromium_with_its_numbers(tmp_path: Path) -> None:
    evidence = Evidence()
    for offset, (topic, key, value) in enumerate(story("EXP-HTML")):
        evidence.add(topic, 0, offset, key, value, 0)
    report = build_report(evidence, "EXP-HTML", datetime(2026, 3, 4, tzinfo=UTC), reproduced={1: DIGEST})
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")

    dom = rendered_dom(page, tmp_path / "profile")

    assert shown(dom, "directive-id") == "EXP-HTML"
    assert shown(dom, "affected-users") == "3"
    assert shown(dom, "discrepancies") == str(report.discrepancies_total) == "4"
    assert shown(dom, "notices-delivered") == "2"
    assert shown(dom, "tte-eu-west-1") == "90.00 s"
    assert shown(dom, "country-1-US") == "2" and shown(dom, "account-1-employee") == "1"
    assert shown(dom, "reproduced-1") == "matches"
    assert dom.count("<tr") >= 4 + len(report.discrepancies)
