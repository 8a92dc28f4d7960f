"""The callback's per-method loggers, built from the methods' records.

``base`` holds the narrow :class:`~keras_convviz.loggers.base.LogContext` a
logger sees and the :class:`~keras_convviz.loggers.base.MethodLogger` base
class; ``scores`` the generic loggers of maps that explain a class score
(``ClassScoreLogger``: saliency, SmoothGrad, guided backprop, integrated
gradients, LRP, RISE; ``CAMLogger``: the Grad-CAM family) and class models;
``layers`` the methods that look at one layer's feature maps (deconv,
occlusion, box filters, top-k patches); ``featurevis`` and ``zeiler`` the
rest. A record's ``logger`` field (:mod:`keras_convviz.registry`) names its
class; :func:`logged_methods` is ``keras_convviz.callbacks.METHODS``.
"""

from __future__ import annotations

import importlib

from .. import registry

__all__ = ["logger_class", "logged_methods", "requested_methods", "check_methods"]

_GENERIC = {"score": "scores.ClassScoreLogger", "cam": "scores.CAMLogger"}


def logger_class(record):
    """The logger class of a record: ``"score"``, ``"cam"`` or ``"<module>.<Class>"`` under this package."""
    module, _, name = _GENERIC.get(record.logger, record.logger).rpartition(".")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def logged_methods() -> dict:
    """``{name: logger class}`` of every method the callback logs, in the dashboard's pipeline order."""
    return {m.name: logger_class(m) for m in registry.callback_methods()}


def requested_methods(methods) -> dict:
    """``methods=`` (a name, a list of names or ``{name: options}``) as ``{one name: options}``: aliases
    such as ``"integrated"`` become the method's one name; unknown names are kept for :func:`check_methods`."""
    if isinstance(methods, str):
        methods = (methods,)
    options = dict(methods) if isinstance(methods, dict) else {m: {} for m in methods}
    out = {}
    for name, opts in options.items():
        try:
            out[registry.resolve(name)] = opts
        except (ValueError, TypeError):
            out[name] = opts
    return out


def check_methods(options, known):
    """``ValueError`` naming the choices for unknown or no methods, and for options that are not dicts."""
    unknown = [m for m in options if m not in known]
    if unknown:
        raise ValueError(f"unknown ConvViz method(s) {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(known)}")
    if not options:
        raise ValueError("methods is empty; choose from " + ", ".join(known))
    for name, opts in options.items():
        if opts is not None and not isinstance(opts, dict):
            raise ValueError(f"options of method {name!r} must be a dict, got {opts!r}")
