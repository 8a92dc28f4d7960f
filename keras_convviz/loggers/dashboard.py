"""What the callback logs for the dashboard besides pictures: the model walk and each step's facts.

Once per run, :func:`walk_document` (the layers in network order with their
type, output shape and receptive field from :mod:`keras_convviz.fields`, the
input size and the class names); at every logged step, :func:`step_document`
(each probe image's top predictions with probabilities, the class the
score-based maps explain, the strongest position of every followed feature
map, and the value range behind every map picture). The schema is
:func:`tb_plugin.metadata.make_walk` / :func:`tb_plugin.metadata.make_step_info`.
The dashboard draws receptive fields on hover from the walk alone (Zeiler &
Fergus 2014, arXiv:1311.2901, fig. 2 crops: unit ``(i, j)`` sees rows
``i * stride - padding`` .. ``+ size - 1``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tb_plugin import metadata as md

from ..checks import resolve_targets
from ..fields import receptive_fields
from ..methods.capture import capture
from ..probe import compiled, input_spec, run
from ..select import probabilities as head_probabilities
from ..select import score_step

__all__ = ["walk_document", "step_document", "top_predictions", "strongest_units", "check_class_names"]

TOP_PREDICTIONS = 5


def check_class_names(class_names, classes):
    """``class_names`` as a list of strings, one per class (``ValueError`` naming the fix)."""
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes)):
        raise ValueError("class_names must be a list of names, one per class, not a single string")
    names = [str(c) for c in class_names]
    if len(names) != max(int(classes), 2) and not (classes == 1 and len(names) == 2):
        raise ValueError(f"class_names has {len(names)} names for a model with {classes} classes; "
                         f"give one name per class")
    return names


def walk_document(graph, image_size, class_names=None) -> dict:
    """The run's walk document: every layer in network order, spatial ones with their receptive field."""
    fields = receptive_fields(graph)
    layers = []
    for step in graph.steps:
        entry = {"name": step.name, "type": step.type_name, "output_shape": list(step.output_shape)}
        field = fields.get(step.name)
        if field is not None:
            entry.update(rf_size=field.size, rf_stride=field.stride, rf_padding=field.padding,
                         aligned=field.aligned)
        layers.append(entry)
    return md.make_walk(layers, image_size, class_names)


def top_predictions(probabilities, top=TOP_PREDICTIONS) -> list:
    """Per image, its ``top`` classes as ``(class, probability)``, most probable first."""
    probabilities = np.asarray(probabilities, np.float64)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
    return [[(int(c), float(p[c])) for c in row] for p, row in zip(probabilities, order)]


def strongest_units(graph, probe, followed, activations=None) -> dict:
    """``{layer: {map: [(y, x, activation) per image]}}``: where each followed map peaks on each image.

    This is the activation a top-1 deconv projection keeps (the argmax of the map). ``activations``:
    the followed layers' outputs for ``probe`` when already computed (else one capture pass).
    """
    if not followed:
        return {}
    acts = activations if activations is not None else capture(graph, probe, sorted(followed)).activations
    out = {}
    for layer, maps in followed.items():
        a = np.asarray(acts[layer])
        n, h, w, _ = a.shape
        out[layer] = {}
        for m in maps:
            flat = a[..., int(m)].reshape(n, -1)
            best = flat.argmax(axis=1)
            out[layer][int(m)] = [(int(b // w), int(b % w), float(flat[i, b])) for i, b in enumerate(best)]
    return out


def step_document(graph, probe, targets, followed, ranges, topk=None) -> dict:
    """The step document: predictions, explained classes, followed units, value ranges and top-k rows."""
    head = score_step(graph)
    layers = sorted(followed or {})
    acts, probs = probe_pass(graph, head, layers)(tf.constant(np.asarray(probe, np.float32)))
    probabilities = probs.numpy()
    predicted = probabilities.argmax(axis=1)
    explained = resolve_targets(targets, len(probe), probabilities.shape[1], predicted=predicted)
    units = strongest_units(graph, probe, followed, {k: v.numpy() for k, v in acts.items()})
    return md.make_step_info(top_predictions(probabilities), explained, units, ranges, topk)


def probe_pass(graph, head, layers):
    """One compiled forward pass for the step document: ``layers``' outputs and the class probabilities."""
    def build():
        @tf.function(input_signature=[input_spec(graph)], autograph=False)
        def forward(x):
            out = run(graph, x, layers, linear=[head.name])
            return {name: out[name] for name in layers}, head_probabilities(out[head.name], head)

        return forward

    return compiled(graph, ("dashboard step", head.name, tuple(layers)), build)
