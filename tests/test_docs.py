"""The README and docs/ cannot rot: their commands parse, name real files, and a few run; their links resolve.

* Every ``convviz ...`` command in a code block of README.md, docs/*.md and
  benchmarks/RESULTS.md (``\\`` continuations joined, ``#`` comments dropped)
  parses with the real parser, ``keras_convviz.cli.build_parser()``. Synopsis
  lines, those with a placeholder in CAPITALS (``IMAGE``, ``--model M``,
  ``X,Y,W,H``) or ``[optional]`` parts, are skipped.
* Every image those commands name, in code blocks and in inline code, is one
  ``convviz demo --logdir runs/demo`` writes (``runs/demo/samples/`` and one
  of ``demo.sample_names()``), and the folder or glob ``convviz topk`` mines
  is that folder or matches one of its files.
* A few cheap commands, taken verbatim from the pages, run end to end through
  ``cli.main`` on samples written by ``demo.write_samples`` into a temporary
  ``runs/demo/samples``.
* Every relative link and image of those pages points to an existing file,
  and every ``#anchor`` to a heading of its target page (GitHub's slugs).
"""

import fnmatch
import pathlib
import re
import shlex

import pytest

from keras_convviz import cli, demo

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "RESULTS.md"]
SAMPLES = "runs/demo/samples"
IMAGE = re.compile(r"\.(png|jpe?g|gif|bmp|mp4|avi|mov|webm)$", re.IGNORECASE)
PLACEHOLDER = re.compile(r"(^|[=,])[A-Z][A-Z0-9_]*($|[,.]|\.\.\.)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose_and_blocks(text):
    """``(prose lines, code-block lines)`` of a markdown page."""
    prose, code, block = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            block = not block
            continue
        (code if block else prose).append(line)
    return prose, code


def block_commands(text):
    """Every ``convviz`` command line in the page's code blocks, continuations joined, comments dropped."""
    _, lines = _prose_and_blocks(text)
    found = []
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("convviz "):
            continue
        command = line.strip()
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1].rstrip() + " " + lines[i].strip()
        found.append(command.split(" #")[0].strip())
    return found


def inline_commands(text):
    """``convviz ...`` in inline code of the prose (often partial: only their paths are checked)."""
    prose, _ = _prose_and_blocks(text)
    return re.findall(r"`(convviz [^`]+)`", re.sub(r"\s*\n\s*", " ", "\n".join(prose)))


def is_synopsis(words):
    return any("[" in w or "|" in w or PLACEHOLDER.search(w) for w in words)


def named_paths(words):
    """The image files and the top-k folder or glob a command names."""
    named = [w for w in words if IMAGE.search(w)]
    if len(words) > 2 and words[1] == "topk" and words[2] not in named and not words[2].isupper():
        named.append(words[2])
    return named


def _all(kind):
    return [(page, command) for page in PAGES for command in kind(page.read_text())]


def test_pages_exist_and_hold_commands():
    assert len(_all(block_commands)) >= 25  # the extraction finds the examples at all
    runnable = [c for _, c in _all(block_commands) if not is_synopsis(shlex.split(c))]
    assert len(runnable) >= 20


@pytest.mark.parametrize("page,command", _all(block_commands), ids=lambda v: getattr(v, "name", str(v))[:60])
def test_block_command_parses(page, command):
    words = shlex.split(command)
    if is_synopsis(words):
        pytest.skip("a synopsis with placeholders")
    argv = cli.attach_negative_values(words[1:])
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit as stop:  # --version / --help exit 0; a parse error 2, its one line on stderr
        assert stop.code == 0 and argv[0] in ("--version", "--help", "-h"), \
            f"{page.name}: `{command}` does not parse (exit {stop.code})"
        return
    assert args.command == words[1]


def test_commands_name_only_images_convviz_demo_writes():
    checked = 0
    names = demo.sample_names()
    for page, command in _all(block_commands) + _all(inline_commands):
        for path in named_paths(shlex.split(command)):
            checked += 1
            where = f"{page.name}: `{command}`"
            if IMAGE.search(path) and "*" not in path:
                assert path.rsplit("/", 1)[0] == SAMPLES, where
                assert path.rsplit("/", 1)[-1] in names, where
            else:  # the top-k folder or glob: the samples folder, or a glob matching some sample
                assert path.rstrip("/") == SAMPLES or any(
                    fnmatch.fnmatch(f"{SAMPLES}/{name}", path) for name in names), where
    assert checked >= 10


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page):
    prose, _ = _prose_and_blocks(page.read_text())
    seen, out = {}, set()
    for line in prose:
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = _slug(match.group(1))
            out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return out


def test_relative_links_resolve():
    checked = 0
    for page in PAGES:
        prose, _ = _prose_and_blocks(page.read_text())
        for target in LINK.findall("\n".join(prose)):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.name}: link to missing {target}"
            if anchor and file.suffix == ".md":
                assert anchor in anchors(file), f"{page.name}: no heading #{anchor} in {file.name}"
            checked += 1
    assert checked >= 40


def _doc_command(pattern):
    """The first runnable command of the pages matching ``pattern`` (a regex), as argv."""
    for _, command in _all(block_commands):
        if re.fullmatch(pattern, command):
            return shlex.split(command)[1:]
    raise AssertionError(f"no documented command matches {pattern!r}")


def test_documented_commands_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    demo.write_samples(SAMPLES)

    assert cli.main(_doc_command(r"convviz layers --model demo")) == 0
    out = capsys.readouterr().out
    assert "block3_conv2" in out and "rf size" in out

    argv = _doc_command(r"convviz saliency runs/demo/samples/\w+\.png --model demo --out out/")
    assert cli.main(argv) == 0
    stem = pathlib.Path(argv[1]).stem
    assert (tmp_path / "out" / f"{stem}_saliency.png").stat().st_size > 0
    assert "top classes:" in capsys.readouterr().out

    argv = _doc_command(r"convviz gradcam runs/demo/samples/\w+\.png --model demo --target \w+ --out out/")
    assert cli.main(argv) == 0
    stem = pathlib.Path(argv[1]).stem
    assert (tmp_path / "out" / f"{stem}_gradcam_overlay.png").stat().st_size > 0
