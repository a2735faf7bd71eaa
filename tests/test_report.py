"""The run's HTML report: one self-contained page (no network: nothing loaded from elsewhere)
that a real headless browser renders with its chart, tables and verdicts."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from shipyard.engine.html_report import render

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _artifacts() -> dict:
    profile = [
        {
            "name": "row_id",
            "dtype": "int64",
            "role": "key",
            "nulls": 0,
            "null_fraction": 0.0,
            "distinct": 300,
            "range": [0, 299],
            "action": "row key, not a feature (added: row numbers; data.key is not set)",
        },
        {
            "name": "amount",
            "dtype": "float64",
            "role": "numeric",
            "nulls": 12,
            "null_fraction": 0.04,
            "distinct": 280,
            "range": [1.5, 99.0],
            "action": "scaled; 12 missing: imputed",
        },
        {
            "name": "note <b>",
            "dtype": "object",
            "role": "text",
            "nulls": 0,
            "null_fraction": 0.0,
            "distinct": 300,
            "top": [["late bill", 1]],
            "action": "left out: free text",
        },
    ]
    return {
        "check_report": {
            "passed": True,
            "rows": 300,
            "columns": 3,
            "failures": [],
            "profile": profile,
            "warnings": [{"check": "null fraction", "column": "amount", "observed": 0.04, "expected": "<= 0.01"}],
            "ingest": {"rows_read": 300},
        },
        "split_manifest": {
            "kind": "stratified",
            "counts": {"test": 45, "train": 210, "val": 45},
            "labels": {"train": {"no": 190, "yes": 20}, "val": {"no": 41, "yes": 4}, "test": {"no": 45, "yes": 0}},
            "warnings": [
                {
                    "check": "class missing from a split",
                    "column": "test",
                    "observed": "class 'yes': 0 rows in test (20 in train)",
                }
            ],
        },
        "learning_curve": pd.DataFrame(
            {
                "epoch": range(10),
                "train/loss": [1 / (e + 1) for e in range(10)],
                "val/loss": [1.2 / (e + 1) + 0.1 for e in range(10)],
            }
        ),
        "metrics": {"val/accuracy": 0.91, "test/accuracy": 0.93, "test/balanced_accuracy": 0.5},
        "confusion": pd.DataFrame({"actual": ["no"] * 42 + ["yes"] * 3, "predicted": ["no"] * 44 + ["yes"]}),
        "gate_report": {
            "metric": "test/balanced_accuracy",
            "passed": False,
            "metric_reason": "the smallest class",
            "checks": [
                {
                    "name": "beats linear baseline on test/balanced_accuracy",
                    "passed": False,
                    "observed": 0.5,
                    "expected": ">= 0.61",
                    "detail": "linear baseline: 0.61",
                }
            ],
        },
    }


def test_the_page_holds_every_section_and_loads_nothing_from_elsewhere() -> None:
    page = render("shop/orders", "binary", _artifacts(), run={"seed": 42})
    for heading in ("Data", "Split", "Learning curve", "Metrics", "Confusion matrix", "Gate", "Lineage", "Deployments"):
        assert f"<h2>{heading}</h2>" in page
    assert "note &lt;b&gt;" in page and "note <b>" not in page  # data is escaped, never markup
    assert "class 'yes': 0 rows in test" in html.unescape(page) and "gate FAILED" in page and "<polyline" in page
    # The split table reads train, val, test (the manifest's JSON has its keys sorted).
    assert "<th>class</th><th>train</th><th>val</th><th>test</th>" in page
    # No script, stylesheet, image or font from anywhere: the only URL is the SVG namespace.
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert re.findall(r"https?://[^\"' )]+", page) == ["http://www.w3.org/2000/svg"]


@pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine")
def test_a_headless_browser_renders_the_chart_and_the_verdicts(tmp_path: Path) -> None:
    """The fault this guards against: DVC's plots page is blank offline. Rendered with networking
    disabled, this page shows the curve (its blue line) and the failed gate (its red verdict)."""
    page = tmp_path / "report.html"
    page.write_text(render("shop/orders", "binary", _artifacts(), run={"seed": 42}))
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--window-size=1200,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = Image.open(shot).convert("RGB")
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20) or []}
    near = lambda rgb: any(sum(abs(a - b) for a, b in zip(rgb, c, strict=True)) < 30 for c in colours)  # noqa: E731
    assert near((0x1F, 0x6F, 0xEB)), "the learning curve's line is not on the page"
    assert near((0xB3, 0x26, 0x1E)), "the failed gate's red verdict is not on the page"
    assert near((0xF1, 0xF4, 0xF9)), "the tables' header shading is not on the page"


def test_deployments_show_edge_parity_per_variant() -> None:
    parity = {
        "metric": "accuracy",
        "variants": {
            "fp32": {"passed": True, "max_abs_diff": 2e-7, "metric": 0.96, "size_bytes": 9000, "latency_p50_ms": 0.02},
            "int8": {"passed": False, "max_abs_diff": 0.2, "metric": 0.81, "size_bytes": 3000, "latency_p50_ms": 0.01},
        },
    }
    deployments = {"edge": {"path": "deploy/shop/orders/edge", "version": "v2.0.0", "parity": parity}}
    page = render("shop/orders", "binary", _artifacts(), deployments=deployments)
    section = page[page.index("<h2>Deployments</h2>") :]
    assert "deploy/shop/orders/edge (v2.0.0)" in section and "<th>test accuracy</th>" in section
    assert "<td>fp32</td><td><span class=pass>pass</span></td>" in section
    assert "<td>int8</td><td><span class=fail>FAIL</span></td>" in section
