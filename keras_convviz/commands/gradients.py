"""``convviz saliency | smoothgrad | guided | ig | gradcam``: gradient maps of one image.

Each writes ``<stem>_<method>.png`` (the map) and ``<stem>_<method>_overlay.png``
(the map over the input) and prints the top predicted classes with their
names. The explained class is ``--target`` (an index or a class name) or the
predicted one.
"""

from __future__ import annotations

import os

from . import add_model_args, add_out_arg, check_out_dir, class_index, load_preset, out_path

METHODS = {
    "saliency": "gradient saliency: max over channels of |d logit / d pixel| (Simonyan et al.)",
    "smoothgrad": "SmoothGrad: saliency averaged over noisy copies (Smilkov et al.)",
    "guided": "guided backpropagation (Springenberg et al.)",
    "ig": "integrated gradients from a black baseline (Sundararajan et al.)",
    "gradcam": "Grad-CAM: gradient-weighted class activation map (Selvaraju et al.)",
}


def register(sub):
    for name, help_text in METHODS.items():
        p = sub.add_parser(name, help=help_text, description=help_text + ".")
        p.add_argument("image", metavar="IMAGE", help="an image file, or a video with --frame")
        add_model_args(p)
        p.add_argument("--target", default=None, metavar="C",
                       help="class to explain: an index or a class name (default: the predicted class)")
        p.add_argument("--frame", type=int, default=None, help="frame number when IMAGE is a video")
        p.add_argument("--top", type=int, default=5, help="predicted classes to print (default: %(default)s)")
        p.add_argument("--batch-size", type=int, default=16,
                       help="model inputs evaluated at once (memory) (default: %(default)s)")
        if name == "smoothgrad":
            p.add_argument("--samples", type=int, default=25, help="noisy copies (default: %(default)s)")
            p.add_argument("--noise", type=float, default=0.15,
                           help="noise std as a fraction of the input range (default: %(default)s)")
            p.add_argument("--seed", type=int, default=None, help="noise seed (default: random)")
        if name == "ig":
            p.add_argument("--steps", type=int, default=50, help="Riemann steps (default: %(default)s)")
        if name == "gradcam":
            p.add_argument("--layer", default=None, metavar="L",
                           help="spatial layer (default: the last spatial layer before the classifier)")
        add_out_arg(p)
        p.set_defaults(run=run, method=name)


def probabilities(model, x):
    """Class probabilities from the pre-softmax logits (sigmoid for a single unit)."""
    import numpy as np

    from ..select import logits

    z = np.asarray(logits(model, x), np.float64)
    if z.shape[-1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1 - p1, p1], axis=-1)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def compute(method, model, x, target, args):
    """The raw map of ``method`` for the batch ``x``."""
    from .. import gradcam, guided_backprop, integrated_gradients, saliency, smoothgrad

    bs = args.batch_size
    if method == "saliency":
        return saliency(model, x, target, batch_size=bs)
    if method == "smoothgrad":
        return smoothgrad(model, x, target, samples=args.samples, noise=args.noise, batch_size=bs,
                          seed=args.seed)
    if method == "guided":
        return guided_backprop(model, x, target, batch_size=bs)
    if method == "ig":
        return integrated_gradients(model, x, target, steps=args.steps, batch_size=bs)
    return gradcam(model, x, target, layer=args.layer, batch_size=bs)


def pictures(method, rgb, m, order=None):
    """``(map_png, overlay_png)`` for one image's map ``m`` and its RGB input ``rgb``."""
    import numpy as np

    from ..render import colormap, overlay, projection_image

    if m.ndim == 3:  # guided / IG: (H, W, C)
        strength = np.abs(m).max(axis=-1) if method == "guided" else np.abs(m).sum(axis=-1)
        if method == "guided":
            shown = m[..., order] if order is not None and m.shape[-1] == 3 else m
            picture = projection_image(shown)
        else:
            picture = colormap(_stretch(strength))
    else:
        strength = m
        picture = colormap(_stretch(m) if method != "gradcam" else _unit(m))
    return picture, overlay(rgb, _stretch(strength) if method != "gradcam" else _unit(strength),
                            normalized=True)


def _unit(m):
    import numpy as np

    m = np.asarray(m, np.float64)
    top = m.max()
    return m / top if top > 0 else np.zeros_like(m)


def _stretch(m):
    """Gradient maps: scale by the 99th percentile and clip (Smilkov et al.'s display)."""
    import numpy as np

    m = np.abs(np.asarray(m, np.float64))
    top = np.percentile(m, 99)
    top = top if top > 0 else m.max()
    return np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)


def _enlarge(image, minimum=192):
    """Small inputs (the 64x64 demo) are enlarged by an integer factor, nearest neighbour."""
    import numpy as np

    factor = -(-minimum // min(image.shape[:2]))
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def run(args):
    import numpy as np

    from .. import media
    from ..checks import positive_int
    from ..select import num_classes

    method = args.method
    positive_int(args.batch_size, "--batch-size")
    positive_int(args.top, "--top")
    if method == "smoothgrad":
        positive_int(args.samples, "--samples")
    if method == "ig":
        positive_int(args.steps, "--steps")
    check_out_dir(args)
    image = media.read_input(args.image, args.frame)
    preset = load_preset(args)
    model = preset.model
    classes = num_classes(model)
    target = class_index(args.target, preset, classes)
    if method == "gradcam" and args.layer is not None:
        from ..graph import walk

        walk(model).spatial_step(args.layer)
    rgb = media.resize(image, preset.input_size)
    x = preset.prepare([image])

    probs = probabilities(model, x)[0]
    top = np.argsort(-probs, kind="stable")[: min(args.top, probs.size)]
    explained = int(top[0]) if target is None else target
    m = compute(method, model, x, explained, args)[0]
    order = None
    if method == "guided":
        from ..methods.deconv import display_order

        order = display_order(preset.preprocess, x.shape[-1])
    picture, blended = pictures(method, rgb, m, order)

    stem = os.path.splitext(os.path.basename(args.image))[0]
    if args.frame is not None:
        stem += f"_frame{args.frame}"
    written = [media.save_png(out_path(args, f"{stem}_{method}.png"), _enlarge(picture)),
               media.save_png(out_path(args, f"{stem}_{method}_overlay.png"), _enlarge(blended))]
    print("top classes:")
    for rank, c in enumerate(top, 1):
        print(f"  {rank}. {preset.class_name(c)} ({int(c)}): {probs[c]:.3f}")
    print(f"explained: {preset.class_name(explained)} ({explained}), p = {probs[explained]:.3f}")
    print(f"wrote {len(written)} files to {args.out}: " + ", ".join(os.path.basename(p) for p in written))
    return 0
