"""One record per method: the single place a method's identity lives.

Each :class:`Method` says what the method is called (one name, used for the
CLI subcommand, the callback's ``methods=``, the dashboard's tags and the
output files; aliases are accepted on input), which public function computes
it, what it returns, how its maps are drawn, its CLI flags, how the callback
logs it and what the demo logs. Everything else derives from :data:`METHODS`:
``keras_convviz.__init__``'s API map, ``callbacks.METHODS``, the dashboard's
method order (``tb_plugin.metadata.METHOD_ORDER``), the CLI's attribution-map
subcommands (``commands/maps.py``), the randomization check's method names and
the demo's method list. ``docs/adding-a-method.md`` walks through adding one.

Import-light on purpose (no TensorFlow, no numpy): ``import keras_convviz`` and
the TensorBoard plugin read it.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Optional

__all__ = ["Method", "Flag", "METHODS", "lookup", "resolve", "api_map", "method_order", "callback_methods",
           "demo_options", "map_methods", "DRAWINGS"]

# How a map is drawn (figures.maps.draw): the one normalization per method, CLI, notebook and dashboard alike.
DRAWINGS = {
    "stretched": "|value| (summed over channels) scaled by its 99th percentile, inferno",
    "cam": "scaled by its maximum, inferno (a CAM is non-negative and coarse)",
    "range": "min-max per image, inferno (a map with a large common offset, such as RISE's mean score)",
    "signed": "summed over channels, diverging and symmetric about 0 (white = 0) at the 99th percentile of |value|",
    "projection": "an input-space signal drawn as an image: mid-grey = 0, +-max |value| white / black",
    "own": "the method's own figure (figures/<method>.py)",
}


@dataclasses.dataclass(frozen=True)
class Flag:
    """One CLI option of a map method: ``--samples`` sets keyword ``samples`` of the function.

    ``kind``: ``"positive_int"``, ``"int"`` (checked by the function), ``"float"`` or ``"str"``.
    """

    flag: str
    kind: str
    default: object
    help: str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclasses.dataclass(frozen=True)
class Method:
    """A method's record.

    ``returns``: ``"map"`` (N, H, W), ``"channels"`` (N, H, W, C) or
    ``"result"`` (a result object). ``cli``: ``"map"`` for a subcommand built
    from this record (``commands/maps.py``), the module of a bespoke one, or
    None. ``logger``: ``"score"`` (a map of the class score, logged under the
    score layer), ``"cam"`` (a map per chosen layer), a dotted class under
    ``keras_convviz.loggers`` or None (not logged by the callback).
    ``demo``: the options ``convviz demo`` logs it with (None: not logged).
    """

    name: str
    function: str
    module: str
    family: str
    returns: str
    drawing: str
    paper: str
    summary: str
    aliases: tuple = ()
    extras: tuple = ()
    cli: Optional[str] = None
    flags: tuple = ()
    logger: Optional[str] = None
    demo: Optional[dict] = None
    examples: tuple = ()

    def load(self):
        """The public function (imported on first use)."""
        return getattr(importlib.import_module(f"keras_convviz.{self.module}"), self.function)

    @property
    def names(self) -> tuple:
        return (self.name,) + tuple(self.aliases)

    @property
    def takes_layer(self) -> bool:
        return self.family == "cam"


_C, _P, _L = "runs/demo/samples/circle.png", "runs/demo/samples/chelsea.png", "--model efficientnet-lite0"
_TARGET = Flag("--target", "str", None, "class to explain: an index or a class name (default: the predicted class)")
_LAYER = Flag("--layer", "str", None, "spatial layer (default: the last spatial layer before the classifier)")


def _score(name, function, module, drawing, paper, summary, returns="map", **kw):
    kw.setdefault("examples", (f"convviz {name} {_C}", f"convviz {name} {_P} {_L}"))
    return Method(name, function, module, "gradient", returns, drawing, paper, summary, cli="map", logger="score",
                  demo=kw.pop("demo", {}), **kw)


def _cam(name, module, paper, summary, family="cam", demo=None, flags=(), aliases=()):
    return Method(name, name, module, family, "map", "cam", paper, summary, aliases=aliases, cli="map",
                  flags=(_LAYER,) + flags,
                  logger="cam", demo={} if demo is None else demo,
                  examples=(f"convviz {name} {_C}", f"convviz {name} {_P} {_L} --target tabby"))


def _own(name, function, module, family, paper, summary, cli=None, logger=None, demo=None, extras=(), aliases=()):
    return Method(name, function, module, family, "result", "own", paper, summary, aliases=aliases, extras=extras,
                  cli=cli, logger=logger, demo=demo)


_ZF = "Zeiler & Fergus 2014, arXiv:1311.2901"
# The pipeline order: the dashboard's cards, the callback's logging and the CLI's listing follow it.
METHODS = (
    _own("deconv", "deconv", "methods.deconv", "projection", _ZF,
         "deconvnet projections of the strongest feature maps (fig. 2/4)", cli="commands.deconv",
         logger="layers.DeconvLogger", demo={}, extras=("deconv_units",)),
    _score("guided", "guided_backprop", "methods.gradients", "projection", "Springenberg et al. 2015, arXiv:1412.6806",
           "guided backpropagation", returns="channels", aliases=("guided_backprop",)),
    _score("saliency", "saliency", "methods.gradients", "stretched", "Simonyan et al. 2014, arXiv:1312.6034",
           "gradient saliency: max over channels of |d logit / d pixel|"),
    _score("smoothgrad", "smoothgrad", "methods.gradients", "stretched", "Smilkov et al. 2017, arXiv:1706.03825",
           "SmoothGrad: saliency averaged over noisy copies", demo={"samples": 8},
           flags=(Flag("--samples", "positive_int", 25, "noisy copies"),
                  Flag("--noise", "float", 0.15, "noise std as a fraction of the input range"))),
    _score("ig", "integrated_gradients", "methods.gradients", "signed", "Sundararajan et al. 2017, arXiv:1703.01365",
           "integrated gradients from a black baseline", returns="channels", aliases=("integrated_gradients",
                                                                                     "integrated"),
           demo={"steps": 16}, flags=(Flag("--steps", "int", 50, "Riemann steps"),),
           examples=(f"convviz ig {_C} --steps 16", f"convviz ig {_P} {_L} --steps 32")),
    _score("lrp", "lrp", "methods.lrp", "signed", "Bach et al. 2015, PLoS ONE 10(7); Montavon et al. 2019",
           "layer-wise relevance propagation (a composite of rules per layer type)", returns="channels",
           flags=(Flag("--rule", "str", "epsilon", "one rule for every layer: zero, epsilon, zplus, alpha_beta, ..."),
                  Flag("--composite", "str", None, "rules per layer type, e.g. epsilon_plus (overrides --rule)"))),
    _cam("gradcam", "methods.gradcam", "Selvaraju et al. 2017, arXiv:1610.02391",
         "Grad-CAM: gradient-weighted class activation map"),
    _cam("gradcam_plus_plus", "methods.cams", "Chattopadhyay et al. 2018, arXiv:1710.11063",
         "Grad-CAM++: positive gradients weighted per position", aliases=("gradcam++",)),
    _cam("layercam", "methods.cams", "Jiang et al. 2021, IEEE TIP 30", "Layer-CAM: positive gradients times activations"),
    _cam("xgradcam", "methods.cams", "Fu et al. 2020, arXiv:2008.02312", "XGrad-CAM: activation-normalized weights"),
    _cam("hirescam", "methods.cams", "Draelos & Carin 2020, arXiv:2011.08891",
         "HiResCAM: gradients times activations, summed over channels"),
    _cam("eigencam", "methods.cams", "Muhammad & Yeasin 2020, arXiv:2008.00299",
         "Eigen-CAM: first principal component of the activations (no gradient, class-agnostic)"),
    _cam("scorecam", "methods.scorecam", "Wang et al. 2020, arXiv:1910.01279",
         "Score-CAM: channels weighted by the score of the input they mask", family="cam",
         demo={"max_channels": 32}, flags=(Flag("--max-channels", "positive_int", None,
                                                "strongest channels to score (default: all)"),)),
    _cam("ablationcam", "methods.scorecam", "Desai & Ramaswamy 2020, WACV",
         "Ablation-CAM: channels weighted by the score drop when each is zeroed"),
    _score("rise", "rise", "methods.rise", "range", "Petsiuk et al. 2018, arXiv:1806.07421",
           "RISE: mean score under random masks", demo={"masks": 500},
           flags=(Flag("--masks", "positive_int", 2000, "random masks"),)),
    _own("occlusion", "occlusion", "methods.occlusion", "perturbation", _ZF,
         "occlusion sensitivity: a grey square slid over the image (fig. 7)", cli="commands.occlusion",
         logger="layers.OcclusionLogger", demo={"patch": 16, "stride": 4}),
    _own("topk", "top_activations", "methods.topk", "dataset", _ZF,
         "top-k activations of a dataset per map (fig. 2)", cli="commands.topk", logger="layers.TopKLogger",
         demo={"k": 9}, aliases=("top_activations",)),
    _own("featurevis", "featurevis", "methods.featurevis", "optimization", "Olah et al. 2017, Distill",
         "feature visualization of units, channels and classes", cli="commands.featurevis",
         logger="featurevis.FeatureVisLogger", demo={"steps": 64, "value_range": (0, 1)}, extras=("FeatureVis",)),
    _own("classmodel", "class_model", "methods.classmodel", "optimization", "Simonyan et al. 2014, arXiv:1312.6034",
         "class models: images maximizing a class score", cli="commands.optimize", logger="scores.ClassModelLogger",
         demo={"steps": 40, "value_range": (0, 1)}, aliases=("class_model",)),
    _own("invert", "invert", "methods.inversion", "optimization", "Mahendran & Vedaldi 2015, arXiv:1412.0035",
         "inversion: an image whose features match a layer's", cli="commands.optimize", aliases=("inversion",)),
    _own("boxfilter", "box_filter", "methods.boxfilter", "receptive field", "the MobileNet-224 tool's viz.py",
         "box-filter maps forward from an input crop and backward from a feature-map crop",
         cli="commands.boxfilter", logger="layers.BoxFilterLogger", demo={}, aliases=("box_filter",)),
    _own("filters", "filters", "methods.filters", "analysis", _ZF + " fig. 6", "first-layer filters and aliasing",
         cli="commands.filters", logger="zeiler.FiltersLogger", extras=("Filters",)),
    _own("invariance", "invariance", "methods.invariance", "analysis", _ZF + " fig. 5",
         "invariance curves under translation, scale and rotation", cli="commands.invariance",
         logger="zeiler.InvarianceLogger", extras=("Invariance",)),
    _own("correspondence", "correspondence", "methods.correspondence", "analysis", _ZF + " table 1",
         "correspondence of occluded object parts", cli="commands.correspondence", extras=("Correspondence",)),
)

_BY_NAME = {n.lower(): m for m in METHODS for n in m.names}


def lookup(name) -> Method:
    """The record of ``name`` or one of its aliases (any case, ``-`` for ``_``); ``ValueError`` names the choices."""
    key = str(name).strip().lower().replace("-", "_")
    found = _BY_NAME.get(key) or _BY_NAME.get(key.replace("++", "_plus_plus"))
    if found is None:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(m.name for m in METHODS)}")
    return found


def resolve(name) -> str:
    """The one name of ``name`` (an alias such as ``integrated_gradients`` -> ``ig``)."""
    return lookup(name).name


def api_map() -> dict:
    """``{public name: module}`` for every method function and its module's extra public names."""
    return {public: m.module for m in METHODS for public in (m.function,) + tuple(m.extras)}


def method_order() -> tuple:
    """Every name, aliases right after their method, in pipeline order (the dashboard sorts old logs' tags too)."""
    return tuple(n for m in METHODS for n in m.names)


def callback_methods() -> tuple:
    """The records the callback can log, in pipeline order."""
    return tuple(m for m in METHODS if m.logger)


def map_methods(returns=("map", "channels")) -> tuple:
    """The records whose function returns maps in input space (``(model, inputs, target, ...)``)."""
    return tuple(m for m in METHODS if m.returns in returns)


def demo_options() -> dict:
    """``{name: options}`` of every method ``convviz demo`` logs."""
    return {m.name: dict(m.demo) for m in METHODS if m.demo is not None}
