"""Every image the README's ``convviz`` examples name is one ``convviz demo --logdir runs/demo`` writes.

The examples are read from the README (commands in code blocks, with their ``\\`` continuations, and
commands in inline code); nothing is run. An argument that ends in an image extension, and the folder or
glob ``convviz topk`` mines, must lie in ``runs/demo/samples/`` and (for a file) be one of
``demo.sample_names()``; placeholders such as ``IMAGE`` name no file and are skipped.
"""

import fnmatch
import pathlib
import re
import shlex

from keras_convviz import demo

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SAMPLES = "runs/demo/samples"
IMAGE = re.compile(r"\.(png|jpe?g|gif|bmp|mp4|avi|mov|webm)$", re.IGNORECASE)


def commands(text):
    """Every ``convviz ...`` command line of the README, continuations joined, comments dropped."""
    found, block = [], False
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("```"):
            block = not block
            continue
        if block and line.lstrip().startswith("convviz "):
            command = line
            while command.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command.rstrip()[:-1] + " " + lines[i]
            found.append(command.split(" #")[0])
    inline = re.findall(r"`(convviz [^`]+)`", re.sub(r"\s*\n\s*", " ", text))
    return found + inline


def named_images(command):
    """The image files and the top-k folder or glob that one command names."""
    words = shlex.split(command)
    named = [w for w in words if IMAGE.search(w)]
    if len(words) > 2 and words[1] == "topk" and words[2] not in named and not words[2].isupper():
        named.append(words[2])
    return named


def test_readme_examples_name_only_images_convviz_demo_writes():
    examples = commands(README.read_text())
    assert len(examples) >= 20  # the extraction finds the examples at all
    checked = 0
    for command in examples:
        for path in named_images(command):
            checked += 1
            if IMAGE.search(path) and "*" not in path:
                assert path.rsplit("/", 1) == [SAMPLES, path.rsplit("/", 1)[-1]], command
                assert path.rsplit("/", 1)[-1] in demo.sample_names(), command
            else:  # the top-k folder or glob: the samples folder, or a glob matching some sample
                assert path.rstrip("/") == SAMPLES or any(
                    fnmatch.fnmatch(f"{SAMPLES}/{name}", path) for name in demo.sample_names()), command
    assert checked >= 5
