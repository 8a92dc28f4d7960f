"""``convviz saliency | smoothgrad | guided | ig | gradcam``: gradient maps of one image.

Each writes ``<stem>_<method>.png`` (the map) and ``<stem>_<method>_overlay.png``
(the map over the input) and prints the top predicted classes with their
names. The explained class is ``--target`` (an index or a class name) or the
predicted one.
"""

from __future__ import annotations

import os

from . import (add_image_command, add_out_arg, check_out_dir, class_index, fit_image, load_preset, output_name,
               positive_int_arg, warn_blank)

METHODS = {
    "saliency": "gradient saliency: max over channels of |d logit / d pixel| (Simonyan et al. 2014, arXiv:1312.6034)",
    "smoothgrad": "SmoothGrad: saliency averaged over noisy copies (Smilkov et al. 2017, arXiv:1706.03825)",
    "guided": "guided backpropagation (Springenberg et al. 2015, arXiv:1412.6806)",
    "ig": "integrated gradients from a black baseline (Sundararajan et al. 2017, arXiv:1703.01365)",
    "gradcam": "Grad-CAM: gradient-weighted class activation map (Selvaraju et al. 2017, arXiv:1610.02391)",
}


def register(sub):
    for name, help_text in METHODS.items():
        p = add_image_command(sub, name, help_text)
        p.add_argument("--target", default=None, metavar="C",
                       help="class to explain: an index or a class name (default: the predicted class)")
        p.add_argument("--top", type=positive_int_arg, default=5,
                       help="predicted classes to print (default: %(default)s)")
        p.add_argument("--batch-size", type=positive_int_arg, default=16,
                       help="model inputs evaluated at once (memory) (default: %(default)s)")
        if name == "smoothgrad":
            p.add_argument("--samples", type=positive_int_arg, default=25, help="noisy copies (default: %(default)s)")
            p.add_argument("--noise", type=float, default=0.15,
                           help="noise std as a fraction of the input range (default: %(default)s)")
        if name == "ig":
            # checked in run(): its error says "--steps must be >= 1", like the other iteration counts
            p.add_argument("--steps", type=int, default=50, help="Riemann steps (default: %(default)s)")
        if name == "gradcam":
            p.add_argument("--layer", default=None, metavar="L",
                           help="spatial layer (default: the last spatial layer before the classifier)")
        add_out_arg(p)
        p.set_defaults(run=run, method=name, check=check)


def check(args):
    """Pre-flight (no TensorFlow): the iteration counts argparse leaves to us."""
    from ..checks import positive_int

    if args.method == "ig":
        positive_int(args.steps, "--steps")


def compute(method, graph, x, target, args):
    """The raw map of ``method`` for the batch ``x``."""
    from ..methods.gradcam import gradcam
    from ..methods.gradients import guided_backprop, integrated_gradients, saliency, smoothgrad

    bs = args.batch_size
    if method == "saliency":
        return saliency(graph, x, target, batch_size=bs)
    if method == "smoothgrad":
        return smoothgrad(graph, x, target, samples=args.samples, noise=args.noise, batch_size=bs,
                          seed=args.seed, progress=True)
    if method == "guided":
        return guided_backprop(graph, x, target, batch_size=bs)
    if method == "ig":
        return integrated_gradients(graph, x, target, steps=args.steps, batch_size=bs, progress=True)
    return gradcam(graph, x, target, layer=args.layer, batch_size=bs)


def run(args):
    import numpy as np

    from .. import media
    from ..checks import positive_int
    from ..figures.deconv import display_order
    from ..figures.gradients import enlarge, pictures
    from ..fit import map_to_photo, photo_view
    from ..graph import walk
    from ..request import class_score_step
    from ..select import class_probabilities

    method = args.method
    if method == "ig":
        positive_int(args.steps, "--steps")
    check_out_dir(args)
    image = media.read_input(args.image, args.frame)
    preset = load_preset(args)
    x, placement = fit_image(args, preset, image)  # first: it pins a flexible-size model
    graph = walk(preset.model)
    head = class_score_step(graph)
    target = class_index(args.target, preset, int(head.output_shape[-1]))
    if method == "gradcam" and args.layer is not None:
        graph.spatial_step(args.layer)

    probs = class_probabilities(graph, head, x)[0]
    top = np.argsort(-probs, kind="stable")[: min(args.top, probs.size)]
    explained = int(top[0]) if target is None else target
    m = compute(method, graph, x, explained, args)[0]
    warn_blank(args, m, f"the {method} map")
    order = display_order(preset.preprocess, x.shape[-1]) if method == "guided" else None
    picture, blended = pictures(method, photo_view(image, placement), map_to_photo(m, placement), order)
    if args.region is not None:  # the explained box, where it lies on the photo
        from ..fit import box_on_view
        from ..render import outline

        corners = box_on_view(args.region_box, placement, picture.shape[:2])  # the explained input box
        picture, blended = outline(picture, corners), outline(blended, corners)
    written = [media.save_png(output_name(args, method), enlarge(picture)),
               media.save_png(output_name(args, method, "overlay"), enlarge(blended))]
    print("top classes:")
    for rank, c in enumerate(top, 1):
        print(f"  {rank}. {preset.class_label(c)}: {probs[c]:.3f}")
    print(f"explained: {preset.class_label(explained)}, p = {probs[explained]:.3f}")
    print(f"wrote {len(written)} files to {args.out}: " + ", ".join(os.path.basename(p) for p in written))
    return 0
