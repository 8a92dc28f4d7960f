"""Class names: read them from a file, check them against a model, label and look up classes.

One spelling everywhere: a class with a name is ``"Egyptian cat (285)"``, one
without is ``"class 281"`` (never ``"class 281 (class 281)"``). A class given
by name is found case-insensitively; a misspelled one lists the closest names.
"""

from __future__ import annotations

import difflib
import json
import os

__all__ = ["class_label", "read_class_names", "check_class_names", "class_index"]


def class_label(index, names=None) -> str:
    """``"name (index)"`` when ``names`` has one for ``index``, else ``"class index"``."""
    index = int(index)
    if names is not None and 0 <= index < len(names) and str(names[index]).strip():
        return f"{names[index]} ({index})"
    return f"class {index}"


def _from_json(data, path):
    """A JSON list of names, or a dict ``{"0": name}`` / ``{"0": [wnid, name]}`` (Keras' ImageNet index)."""
    if isinstance(data, dict):
        try:
            items = sorted((int(k), v) for k, v in data.items())
        except ValueError:
            items = None
        if items is None or [k for k, _ in items] != list(range(len(items))):
            raise ValueError(f"class names file {path!r}: a JSON object needs the keys 0..N-1; "
                             f"give a JSON list of names or one name per line")
        data = [v[-1] if isinstance(v, list) and v else v for _, v in items]
    if not isinstance(data, list) or not all(isinstance(v, (str, int, float)) for v in data):
        raise ValueError(f"class names file {path!r} holds JSON that is not a list of names; "
                         f"give a JSON list of names or one name per line")
    return [str(v) for v in data]


def read_class_names(path) -> list:
    """The class names in ``path``: one per line, or a JSON list (``ValueError`` naming the fix)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"class names file {path!r} does not exist; give a text file with one name per line "
                         f"or a JSON list")
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read class names file {path!r}: {err}; give a UTF-8 text file") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            names = _from_json(json.loads(text), path)
        except json.JSONDecodeError as err:
            raise ValueError(f"class names file {path!r} is not valid JSON ({err.msg}, line {err.lineno}); "
                             f"give a JSON list of names or one name per line") from None
    else:
        names = [line.strip() for line in text.splitlines()]
        while names and not names[-1]:
            names.pop()  # a trailing newline is not a class
    if not names:
        raise ValueError(f"class names file {path!r} is empty; give one name per line")
    return names


def check_class_names(names, classes, source="class_names") -> list:
    """``names`` as strings, one per class of a ``classes``-unit output (a 1-unit output has 2 classes)."""
    if isinstance(names, (str, bytes)):
        raise ValueError(f"{source} must be a list of names, one per class, not a single string")
    names = [str(n) for n in names]
    expected = max(int(classes), 2)
    if len(names) != expected:
        raise ValueError(f"{source} has {len(names)} names but the model's output has {int(classes)} "
                         f"unit{'s' if int(classes) != 1 else ''}; give {expected} names, one per class")
    return names


def class_index(target, names, classes, what="target") -> int:
    """A class index from an int or an int-like string, or a class name (case-insensitive).

    ``classes``: the output units (1 means classes 0 and 1). A name not among
    ``names`` raises ``ValueError`` listing the closest ones.
    """
    limit = max(int(classes), 2)
    text = str(target).strip()
    try:
        index = int(text)
    except ValueError:
        return _by_name(text, names, limit, what)
    if not 0 <= index < limit:
        raise ValueError(f"{what} {index} is outside the model's classes 0..{limit - 1}")
    return index


def _by_name(text, names, limit, what):
    if not names:
        raise ValueError(f"{what} {text!r} is not a class index 0..{limit - 1}, and this model has no class "
                         f"names; give an index, or the names with --class-names FILE (class_names=)")
    lowered = [str(n).lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    close = difflib.get_close_matches(text.lower(), lowered, n=3, cutoff=0.5)
    hint = f" Closest: {', '.join(str(names[lowered.index(c)]) for c in close)}." if close else ""
    raise ValueError(f"{what} {text!r} is neither a class index 0..{limit - 1} nor a class name of this "
                     f"model.{hint} Give an index or one of its {len(names)} class names.")
