"""End to end in a real browser: Debian's chromium, driven by Playwright, on a real tensorboard.

Playwright never downloads a browser here: chromium is launched through
``executable_path``. Where no chromium is installed the test skips and says so
(``.ci/run`` installs it with apt-get).
"""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tb_helpers import STEPS, tensorboard, write_logdir  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium():
    for candidate in (os.environ.get("CONVVIZ_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _skip(reason):
    print(f"SKIPPED test_browser: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    executable = _chromium()
    if executable is None:
        _skip("no chromium found (apt-get install chromium, or set CONVVIZ_CHROMIUM=/path/to/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        _skip(f"playwright is not installed ({err}); pip install -e '.[test]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True, timeout=60000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    logdir = write_logdir(tmp_path_factory.mktemp("browser_logs"))
    with tensorboard(logdir, load_fast=False) as base:
        yield base


def test_dashboard_in_chromium(browser, server, tmp_path):
    base = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30000)
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base + "/#convviz", wait_until="domcontentloaded")
    frame = page.frame_locator("iframe")  # dynamic plugins live in an iframe
    frame.locator(".cv-card").first.wait_for()

    # pick a tag with the filters
    frame.locator("#cv-method").select_option("deconv")
    frame.locator("#cv-filter").fill("map0003")
    card = frame.locator('.cv-card[data-tag="deconv/block3_conv2/map0003"]')
    card.wait_for()
    assert frame.locator(".cv-card").count() == 1
    main = card.locator("img.cv-main")
    main.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=main.element_handle())
    last = main.get_attribute("src")
    assert card.get_attribute("data-step") == str(STEPS - 1)

    # move the step slider: the shown image changes
    card.locator("input.cv-step").fill("0")
    assert card.get_attribute("data-step") == "0"
    first = card.locator("img.cv-main").get_attribute("src")
    assert first != last
    page.wait_for_function("img => img.complete && img.naturalWidth === 32",
                           arg=card.locator("img.cv-main").element_handle())

    # evolution strip: one thumbnail per step
    card.locator(".cv-evolution-button").click()
    assert card.locator(".cv-evolution img").count() == STEPS

    # overlay mode on a heatmap: the probe image below, opacity from the slider
    frame.locator("#cv-method").select_option("gradcam")
    frame.locator("#cv-filter").fill("")
    heat = frame.locator('.cv-card[data-tag="gradcam/block3_conv2/heatmap"]')
    heat.locator(".cv-overlay-toggle").check()
    heat.locator(".cv-overlay img.cv-base").wait_for()
    heat.locator(".cv-opacity").fill("25")
    assert heat.locator("img.cv-heat").evaluate("img => img.style.opacity") == "0.25"

    # top-k grid
    frame.locator("#cv-method").select_option("topk")
    grid = frame.locator('.cv-card[data-tag="topk/block3_conv2/map0003"] .cv-grid img')
    grid.first.wait_for()
    assert grid.count() == 4

    frame.locator("#cv-method").select_option("")
    frame.locator(".cv-card").nth(3).wait_for()
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10000
    if os.environ.get("CONVVIZ_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CONVVIZ_SCREENSHOT"])
    assert not errors, errors
    assert not frame.locator("#cv-error").is_visible()


def test_dashboard_shows_errors(browser, server):
    """A failing request is shown to the user, not swallowed."""
    base = server
    page = browser.new_page()
    page.set_default_timeout(30000)
    page.route("**/data/plugin/convviz/tags", lambda route: route.fulfill(status=500, body="boom"))
    page.goto(base + "/data/plugin_entry.html?name=convviz", wait_until="domcontentloaded")
    page.locator("#cv-error").wait_for()
    assert "500" in page.locator("#cv-error").inner_text()
