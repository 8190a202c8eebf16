"""The reports in a real browser: headless Chromium (the system's, Debian's ``chromium``) driven
by playwright. For the demo's report and an index over runs (one of them diverged): no console
error, every image decoded, the expected sections present, nothing wider than the window at
1400 and 390 px, and the index sorts when a header is clicked.

Screenshots are written to ``$LAYERSCOPE_SCREENSHOTS`` (default ``build/screenshots`` in the
repository) for people to look at. ``.ci/run`` installs chromium with apt when it is missing;
without a browser this test fails with what to install (it never skips).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from layerscope.cli import main
from layerscope.lab import load_config
from layerscope.lab.experiment import run_one

REPO = Path(__file__).resolve().parents[2]
WIDTHS = (1400, 390)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
RUN_SECTIONS = ("training-curves", "saturation-receptive-field-and-advice",
                "saturation-and-intrinsic-dimension", "layers-latest-epoch", "per-epoch-values")  # fmt: skip


def _browser_path() -> str:
    for candidate in (os.environ.get("LAYERSCOPE_CHROMIUM"), "chromium", "chromium-browser",
                      "google-chrome"):  # fmt: skip
        if candidate and (found := shutil.which(candidate)):
            return found
    pytest.fail("no Chromium found: install it (`apt-get install chromium`, as .ci/run does) or "
                "set LAYERSCOPE_CHROMIUM to the browser's path")  # fmt: skip


@pytest.fixture(scope="module")
def screenshots() -> Path:
    folder = Path(os.environ.get("LAYERSCOPE_SCREENSHOTS", REPO / "build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_browser_path(), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two demo runs (seeds 0 and 1, one epoch) and a diverged run, in one folder."""
    root = tmp_path_factory.mktemp("runs")
    for seed in ("0", "1"):
        args = [
            "demo",
            "--epochs",
            "1",
            "--seed",
            seed,
            "--out",
            str(root / "demo"),
            "--no-progress",
        ]
        assert main(args) == 0
    cfg = load_config({"model": "mlp", "model_kwargs": {"input_size": 8, "hidden": {"value": [16]}},
                       "resolution": 8, "epochs": 2, "optimizer": {"name": "sgd", "lr": 1e30},
                       "device": "cpu", "run_id": "lr1e30", "logs_dir": str(root / "logs")})[0]  # fmt: skip
    assert run_one(cfg, progress=False).status == "diverged"
    kept = load_config({"model": "mlp", "model_kwargs": {"input_size": 8, "hidden": {"value": [16]}},
                        "resolution": 8, "epochs": 3, "device": "cpu", "run_id": "kept",
                        "checkpoints": {"keep": "all"}, "logs_dir": str(root / "logs")})[0]  # fmt: skip
    folder = run_one(kept, progress=False).run_dir
    assert main(["similarity", str(folder), "--over-epochs"]) == 0  # its report gets the section
    assert main(["report", str(root)]) == 0
    return root


def _open(browser, path: Path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900}, device_scale_factor=2)
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, errors


def _check_layout(page, errors: list[str], shot: Path) -> None:
    decoded = page.evaluate(
        "Promise.all(Array.from(document.images).map(i => i.decode().then(() => i.naturalWidth)))"
    )
    assert decoded and all(width > 0 for width in decoded)
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"page is {scroll} px wide in a {inner} px window"
    assert page.evaluate("!!document.querySelector('meta[name=viewport]')")
    page.screenshot(path=str(shot), full_page=True)
    assert not errors, errors


@pytest.mark.parametrize("width", WIDTHS)
def test_the_demo_report_in_a_browser(browser, runs, screenshots, width):
    (report,) = sorted((runs / "demo").glob("*/report.html"))[:1]
    page, errors = _open(browser, report, width)
    for section in RUN_SECTIONS:
        assert page.locator(f"section#{section}").count() == 1, section
    assert "finished at epoch 1 of 1" in page.locator(".runbox").inner_text()
    assert page.locator("nav.toc a").count() >= len(RUN_SECTIONS)
    assert page.locator("figure figcaption").count() == page.locator("figure img").count() >= 5
    advice = page.locator(".advice").inner_text()
    assert "receptive field" in advice.lower() or "border" in advice.lower()
    _check_layout(page, errors, screenshots / f"demo-report-{width}.png")
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_diverged_report_says_so(browser, runs, screenshots, width):
    report = runs / "logs" / "mlp" / "digits" / "8" / "lr1e30" / "report.html"
    page, errors = _open(browser, report, width)
    status = page.locator(".runbox .status").inner_text()
    assert status.startswith("diverged at epoch 1 of 2")
    assert "1e+30" in page.locator(".runbox").inner_text()  # the lr, formatted for people
    _check_layout(page, errors, screenshots / f"diverged-report-{width}.png")
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_similarity_over_epochs_section(browser, runs, screenshots, width):
    report = runs / "logs" / "mlp" / "digits" / "8" / "kept" / "report.html"
    page, errors = _open(browser, report, width)
    section = page.locator("section#similarity-over-epochs")
    assert section.count() == 1 and section.locator("table tbody tr").count() == 2
    _check_layout(page, errors, screenshots / f"similarity-report-{width}.png")
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_index_in_a_browser(browser, runs, screenshots, width):
    page, errors = _open(browser, runs / "index.html", width)
    rows = page.locator("section#runs tbody tr")
    assert rows.count() == 4  # two demo runs, a diverged one, one that kept every checkpoint
    text = page.locator("section#runs").inner_text()
    assert "diverged at epoch 1" in text and "finished" in text
    headers = page.locator("section#runs th").all_inner_texts()
    assert {"status", "seed", "model"} <= {h.strip() for h in headers}
    assert page.locator("section#runs a[href$='report.html']").count() == 4
    # Sorting: click "seed" twice and the order of the seed column flips.
    column = [h.strip() for h in headers].index("seed")
    rows_js = "Array.from(document.querySelectorAll('section#runs tbody tr'))"
    seeds = f"{rows_js}.map(r => r.cells[{column}].textContent)"
    page.locator("section#runs th").nth(column).click()
    ascending = page.evaluate(seeds)
    page.locator("section#runs th").nth(column).click()
    assert page.evaluate(seeds) == ascending[::-1] and ascending != ascending[::-1]
    _check_layout(page, errors, screenshots / f"index-{width}.png")
    page.close()
