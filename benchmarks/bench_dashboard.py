"""The ConvViz dashboard at scale, against TensorBoard's own images dashboard; and its screenshots.

    python benchmarks/bench_dashboard.py                 # 50,000 blobs over 20 runs (a few minutes)
    python benchmarks/bench_dashboard.py --blobs 5000    # smaller
    python benchmarks/bench_dashboard.py --screenshots docs --logdir runs/demo   # README pictures

The benchmark writes two logdirs with the same number of PNG images: ConvViz
blob sequences (``keras_convviz.summary``; 4 probe images per tag and step,
plus the walk and step documents) and stock ``tf.summary.image`` summaries (4
images per tag and step). Both are served by one ``tensorboard`` process each
(``--load_fast=false``, ``--samples_per_plugin convviz=S,images=S`` with S
the number of steps: every step kept), and in the same run of the script it measures, for each:

* the tag-listing route's latency (``/data/plugin/convviz/tags`` vs
  ``/data/plugin/images/tags``), median of repeated requests after a warm-up;
* the time to the first card in headless Chromium: from navigation to the
  first card's image decoded (ConvViz: ``.cv-card img.cv-main``; images
  dashboard: the first ``img`` of an image card), median of fresh pages;
* (issue 28) one tag's series (``/data/plugin/convviz/series`` vs
  ``/data/plugin/images/images``) and one image (``/blob`` vs
  ``/individualImage``), medians over repeated requests;
* (issue 28) the listing made afresh, in this process, without HTTP: the
  ConvViz plugin's ``tags()`` against the images plugin's ``_index_impl``
  over one multiplexer of each logdir (what every /tags request costs while
  the data changes; a repeated request with no new event is answered from
  ConvViz's last listing, the HTTP figure above).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

IMAGES_PER_STEP = 4
CHROMIUM = os.environ.get("CONVVIZ_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def shape(blobs, runs):
    """Tags and steps per run so that runs * tags * steps * IMAGES_PER_STEP = blobs (about)."""
    per_run = max(1, blobs // (runs * IMAGES_PER_STEP))
    steps = 25 if per_run >= 25 else per_run
    return max(1, per_run // steps), steps


def write_convviz(root, runs, tags, steps):
    from tb_plugin import metadata as md
    from keras_convviz import summary

    rng = np.random.default_rng(0)
    pngs = [summary.encode_pngs(rng.integers(0, 255, (IMAGES_PER_STEP, 32, 32, 3), dtype=np.uint8))
            for _ in range(8)]
    layers = [{"name": f"conv{i}", "type": "Conv2D", "output_shape": [32, 32, 8], "rf_size": [3 + 2 * i] * 2,
               "rf_stride": [1, 1], "rf_padding": [1 + i] * 2} for i in range(4)]
    for r in range(runs):
        with summary.Writer(os.path.join(root, f"run{r:02d}")) as w:
            w.document(md.WALK_TAG, "walk", md.make_walk(layers, (32, 32), ["a", "b", "c", "d"]), 0)
            for step in range(steps):
                for t in range(tags):
                    w.images("deconv", f"conv{t % 4}", f"map{t:04d}", pngs[(t + step) % 8], step, "projection",
                             map=t, labels=[f"probe {i}" for i in range(IMAGES_PER_STEP)])
                w.document(md.STEP_TAG, "stepinfo", md.make_step_info([[(0, 0.9)]] * IMAGES_PER_STEP,
                                                                      [0] * IMAGES_PER_STEP), step)


def write_images(root, runs, tags, steps):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    batches = [tf.constant(rng.random((IMAGES_PER_STEP, 32, 32, 3), dtype=np.float32)) for _ in range(8)]
    for r in range(runs):
        with tf.summary.create_file_writer(os.path.join(root, f"run{r:02d}")).as_default():
            for step in range(steps):
                for t in range(tags):
                    tf.summary.image(f"deconv/conv{t % 4}/map{t:04d}", batches[(t + step) % 8], step=step,
                                     max_outputs=IMAGES_PER_STEP)


def tags_latency(url, repeats=15):
    for _ in range(3):
        urllib.request.urlopen(url, timeout=120).read()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        body = urllib.request.urlopen(url, timeout=120).read()
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(body)


def series_and_blob(base, plugin, run="run00", tag="deconv/conv0/map0000", repeats=15):
    """Median ms of one tag's series and of one of its images, for ConvViz or the images dashboard."""
    import urllib.parse

    if plugin == "convviz":
        series = f"{base}/data/plugin/convviz/series?" + urllib.parse.urlencode({"run": run, "tag": tag})
        first = json.loads(urllib.request.urlopen(series, timeout=120).read())["steps"][0]["blobs"][0]
        blob = f"{base}/data/plugin/convviz/{first}"
    else:
        series = f"{base}/data/plugin/images/images?" + urllib.parse.urlencode({"run": run, "tag": tag,
                                                                                 "sample": 0})
        first = json.loads(urllib.request.urlopen(series, timeout=120).read())[0]["query"]
        blob = f"{base}/data/plugin/images/individualImage?{first}"
    return 1000 * tags_latency(series, repeats)[0], 1000 * tags_latency(blob, repeats)[0]


def fresh_listing(root, steps, repeats=7):
    """Median ms of making the listing afresh in-process: ConvViz ``tags()`` vs the images plugin's index."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.image import images_plugin

    from tensorboard import context as tb_context

    from tb_plugin.plugin import ConvVizPlugin

    ctx = tb_context.RequestContext()
    out = {}
    for plugin in ("convviz", "images"):
        mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={plugin: steps})
        mux.AddRunsFromDirectory(os.path.join(root, plugin))
        mux.Reload()
        provider = data_provider.MultiplexerDataProvider(mux, os.path.join(root, plugin))
        context = base_plugin.TBContext(logdir=os.path.join(root, plugin), data_provider=provider, multiplexer=mux,
                                        sampling_hints={plugin: steps})
        if plugin == "convviz":
            p = ConvVizPlugin(context)
            fn = lambda: json.dumps(p.tags(ctx, ""), separators=(",", ":"))  # noqa: E731
        else:
            p = images_plugin.ImagesPlugin(context)
            fn = lambda: json.dumps(p._index_impl(ctx, ""))  # noqa: E731
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        out[plugin] = 1000 * statistics.median(times)
    return out


FIRST_CARD = {
    "convviz": ("#convviz", "iframe", ".cv-card img.cv-main"),
    "images": ("#images", None, "tf-image-loader img"),  # TensorBoard's image dashboard (shadow DOM, pierced)
}


def first_card_time(browser, base, plugin, repeats=5, timeout_s=300):
    """Median seconds from navigation to the first card's image decoded (one try when it exceeds 60 s)."""
    fragment, frame, selector = FIRST_CARD[plugin]
    times = []
    for _ in range(repeats):
        if times and times[-1] > 60:
            break
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        page.goto(base + "/" + fragment, wait_until="commit")
        scope = page.frame_locator(frame) if frame else page
        img = scope.locator(selector).first
        img.wait_for(timeout=1000 * timeout_s)
        img.evaluate("img => img.complete && img.naturalWidth > 0 ? 1 : new Promise(r => img.onload = r)")
        times.append(time.perf_counter() - start)
        page.close()
    return statistics.median(times)


def measure(args):
    from playwright.sync_api import sync_playwright
    from tb_helpers import tensorboard

    runs, (tags, steps) = args.runs, shape(args.blobs, args.runs)
    total = runs * tags * steps * IMAGES_PER_STEP
    root = args.root or tempfile.mkdtemp(prefix="convviz_bench_")
    start = time.perf_counter()
    if not os.path.isdir(os.path.join(root, "images")):
        write_convviz(os.path.join(root, "convviz"), runs, tags, steps)
        write_images(os.path.join(root, "images"), runs, tags, steps)
    print(f"{total} images per dashboard ({runs} runs x {tags} tags x {steps} steps x {IMAGES_PER_STEP}), "
          f"written in {time.perf_counter() - start:.0f} s under {root}")
    results = {}
    # every step kept for both, said explicitly (images=0 makes TensorBoard 2.21's image dashboard show nothing)
    extra = ["--samples_per_plugin", f"convviz={steps},images={steps}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        for plugin in ("convviz", "images"):
            with tensorboard(os.path.join(root, plugin), load_fast=False, extra=extra, wait_for_tags=False,
                             timeout=600) as base:
                wait_loaded(base, plugin, runs)
                latency, size = tags_latency(f"{base}/data/plugin/{plugin}/tags")
                print(f"{plugin:8s} /tags {1000 * latency:7.1f} ms ({size} bytes)", flush=True)
                series_ms, blob_ms = series_and_blob(base, plugin)
                print(f"{plugin:8s} series {series_ms:7.1f} ms, blob {blob_ms:7.1f} ms", flush=True)
                first = first_card_time(browser, base, plugin)
                results[plugin] = {"tags_ms": 1000 * latency, "tags_bytes": size, "first_card_s": first,
                                   "series_ms": series_ms, "blob_ms": blob_ms}
                print(f"{plugin:8s} first card {first:5.2f} s", flush=True)
        browser.close()
    fresh = fresh_listing(root, steps)
    for plugin, ms in fresh.items():
        results[plugin]["fresh_listing_ms"] = ms
    print(f"listing made afresh in-process: convviz {fresh['convviz']:.1f} ms, images {fresh['images']:.1f} ms")
    results["load_1min"] = os.getloadavg()[0]
    return {"images": total, "runs": runs, **results}


def wait_loaded(base, plugin, runs, timeout=900):
    """Until TensorBoard has read every run (its first load of a big logdir takes a while)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = json.loads(urllib.request.urlopen(f"{base}/data/plugin/{plugin}/tags", timeout=120).read())
        listed = listing.get("runs", listing) if plugin == "convviz" else listing
        if len(listed) >= runs:
            time.sleep(3)  # let the last run's events finish loading
            return
        time.sleep(1)
    raise RuntimeError(f"tensorboard did not load {runs} runs of {plugin} within {timeout} s")


def screenshots(args):
    """One screenshot per view of a real logdir (the README's pictures)."""
    from playwright.sync_api import sync_playwright
    from tb_helpers import tensorboard

    os.makedirs(args.screenshots, exist_ok=True)
    with tensorboard(args.logdir, load_fast=False, extra=["--samples_per_plugin", "convviz=0"]) as base, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base + "/#convviz")
        frame = page.frame_locator("iframe")
        frame.locator(".cv-card img.cv-main").first.wait_for()
        frame.locator('.cv-layer-chip[data-layer="block3_conv2"]').click()
        time.sleep(3)
        page.screenshot(path=os.path.join(args.screenshots, "screenshot.png"))
        frame.locator(".cv-unit-link").first.click()
        frame.locator(".cv-unit-pair").first.wait_for()
        time.sleep(3)
        page.screenshot(path=os.path.join(args.screenshots, "dashboard-unit.png"), full_page=True)
        frame.locator(".cv-back").click()
        frame.locator("#cv-image-view").click()
        frame.locator(".cv-panel img.cv-main").first.wait_for()
        time.sleep(3)
        frame.locator(".cv-overlay-toggle").check()
        time.sleep(2)
        panel = frame.locator('.cv-panel[data-tag^="gradcam/"] img.cv-main').first
        panel.hover(position={"x": 70, "y": 60})
        time.sleep(0.5)
        page.screenshot(path=os.path.join(args.screenshots, "dashboard-image.png"), full_page=True)
        browser.close()
    print(f"screenshots written to {args.screenshots}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=50000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--screenshots", help="write one screenshot per view of --logdir here instead")
    parser.add_argument("--logdir", help="the logdir to photograph (e.g. from convviz demo --epochs 2)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--root", help="reuse (or write) the two logdirs here")
    args = parser.parse_args(argv)
    if args.screenshots:
        return screenshots(args)
    results = measure(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
