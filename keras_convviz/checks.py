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
           "class_index", "resolve_targets", "positive_pair", "OPTION_CHECKS", "option_values"]


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


def class_index(value, what="target") -> int:
    """One class index as an int: an integer, or an integral float (``2.0``, ``np.float64(2.0)``).

    We accept integral floats (a class read from a float array is common
    and unambiguous) and refuse fractions (``1.5``), NaN/Inf, booleans,
    strings and anything else with a ``ValueError``: never truncation.
    """
    number = _integral(value) if isinstance(value, (numbers.Real, np.generic)) else None
    if number is None:
        raise ValueError(f"{what} {value!r} is not a class index; give an integer such as 0, 1, 2.")
    return number


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
        return np.asarray(predicted, np.int64).reshape(-1)
    if isinstance(target, (numbers.Number, np.generic, str, bytes)):
        wanted = [class_index(target)] * n
    else:
        try:
            items = list(np.asarray(target).reshape(-1)) if isinstance(target, np.ndarray) else list(target)
        except TypeError:
            raise ValueError(f"target must be a class index, a list of one per image, or None; "
                             f"got {target!r}") from None
        wanted = [class_index(t) for t in items]
        if len(wanted) != n:
            raise ValueError(f"target has {len(wanted)} entries for {n} images; give one per image.")
    bad = [t for t in wanted if not 0 <= t < limit]
    if bad:
        raise ValueError(f"target {bad[0]} is outside the model's classes 0..{limit - 1}.")
    return np.asarray(wanted, np.int64).reshape(n)


# Method options checked by name, with the check the method itself runs, so
# that the callback refuses a bad value in on_train_begin (before an epoch is
# spent) with the method's own message. Options not listed here (patch,
# stride, baseline, ...) are checked by the method at its first log.
def positive_pair(value, what):
    """An int >= 1 or a pair of them (a patch or a stride: height, width)."""
    pair = value if isinstance(value, (tuple, list)) and len(value) == 2 else (value, value)
    return tuple(positive_int(v, what) for v in pair)


OPTION_CHECKS = {
    "patch": positive_pair,
    "stride": positive_pair,
    "samples": positive_int,
    "steps": positive_int,
    "batch_size": positive_int,
    "k": positive_int,
    "jitter": non_negative_int,
    "blur_every": non_negative_int,
    "noise": finite_float,
    "l2": finite_float,
    "tv": finite_float,
    "lr": lambda value, what: finite_float(value, what, 0.0, allow_equal=False),
    "blur_sigma": lambda value, what: finite_float(value, what, 0.0, allow_equal=False),
    "joint": check_bool,
}


def option_values(options, method) -> dict:
    """Method options (a dict) with each value in :data:`OPTION_CHECKS` checked; ``None`` means the default."""
    for name, value in options.items():
        check = OPTION_CHECKS.get(name)
        if check is not None and value is not None:
            try:
                check(value, name)
            except ValueError as err:
                raise ValueError(f"option {name}={value!r} of {method!r}: {err}") from None
    return dict(options)
