"""Argument checks shared by every method, the callback and the CLI.

Each check returns the cleaned value or raises a ``ValueError`` that names the
argument and the way out. Plain Python and numpy: no TensorFlow here, so the
callback can validate its options before any model work.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["positive_int", "non_negative_int", "check_bool", "finite_float", "count", "indices",
           "resolve_targets"]


def _integral(value):
    """``value`` as an int when it is an integer (also ``2.0``), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        return int(value)
    return None


def positive_int(value, what):
    """``value`` as an int >= 1, or a ``ValueError`` naming ``what``."""
    number = _integral(value)
    if number is None:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    if number <= 0:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return number


def non_negative_int(value, what, low=0):
    """``value`` as an int >= ``low`` (integers only: no floats, no bools)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_bool(value, what):
    """``value`` as a bool; anything but True/False is an error."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def finite_float(value, what, low=0.0, allow_equal=True):
    """``value`` as a finite float ``>= low`` (``> low`` without ``allow_equal``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < low or (number == low and not allow_equal):
        bound = ">=" if allow_equal else ">"
        raise ValueError(f"{what} must be a finite number {bound} {low}, got {value!r}")
    return number


def count(spec, total, what="maps"):
    """A count (int >= 1) or a fraction (float in (0, 1]) of ``total`` -> an int.

    Anything else raises ``ValueError``: unlike the seed tool, we never fall
    back silently to a single instance.
    """
    if isinstance(spec, (bool, np.bool_)):
        raise ValueError(f"{what} must be a count or a fraction, got {spec!r}")
    if isinstance(spec, numbers.Integral):
        if spec < 1 or spec > total:
            raise ValueError(f"{what}={spec} but there are {total}; use 1..{total} or a fraction in (0, 1].")
        return int(spec)
    if isinstance(spec, numbers.Real):
        if not 0.0 < float(spec) <= 1.0 or math.isnan(spec):
            raise ValueError(f"{what}={spec}: a fraction must be in (0, 1]; use an int for a count.")
        return max(1, int(math.ceil(float(spec) * total - 1e-9)))
    raise ValueError(f"{what} must be an int count or a float fraction, got {spec!r}")


def indices(spec, limit, what, unique=False):
    """An index or a list of indices into ``0..limit-1`` -> an int64 array ``(M,)``.

    Booleans, fractions, empty lists and (with ``unique``) repeats are errors.
    """
    number = None if isinstance(spec, (bool, np.bool_)) else _integral(spec) if isinstance(
        spec, numbers.Integral) else None
    if number is not None:
        idx = np.asarray([number], np.int64)
    else:
        try:
            raw = np.asarray(list(spec)).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be an index or a list of indices, got {spec!r}") from None
        if raw.size == 0:
            raise ValueError(f"{what}=[] selects nothing; give at least one index.")
        if not np.issubdtype(raw.dtype, np.integer) or raw.dtype == np.bool_:
            raise ValueError(f"{what} must be integer indices, got {list(spec)!r}")
        idx = raw.astype(np.int64)
    bad = idx[(idx < 0) | (idx >= limit)]
    if bad.size:
        raise ValueError(f"{what} {int(bad[0])} is outside 0..{limit - 1} (out of range).")
    if unique and len(set(idx.tolist())) != idx.size:
        raise ValueError(f"{what} lists indices more than once: {idx.tolist()}")
    return idx


def resolve_targets(target, n, classes, predicted=None):
    """``target`` (int, list of one per image, or None) -> int64 array ``(n,)``.

    ``None`` takes ``predicted`` (the argmax classes), or ``-1`` ("the
    predicted class", resolved later) when ``predicted`` is not given.
    Out-of-range targets raise ``ValueError``. A single-unit output accepts
    targets 0 and 1.
    """
    limit = max(int(classes), 2)
    if target is None:
        if predicted is None:
            return np.full((n,), -1, np.int64)
        out = np.asarray(predicted, np.int64).reshape(-1)
    elif isinstance(target, numbers.Integral) and not isinstance(target, (bool, np.bool_)):
        out = np.full((n,), int(target), np.int64)
    else:
        out = np.asarray(list(target), np.int64).reshape(-1)
        if out.shape[0] != n:
            raise ValueError(f"target has {out.shape[0]} entries for {n} images; give one per image.")
    bad = out[(out < 0) | (out >= limit)]
    if bad.size:
        raise ValueError(f"target {int(bad[0])} is outside the model's classes 0..{limit - 1}.")
    return out
