"""``convviz layers``: the model's layers with their geometry and receptive fields."""

from __future__ import annotations

from . import add_model_args, load_preset


def register(sub):
    p = sub.add_parser("layers", help="print every layer with its receptive field")
    add_model_args(p)
    p.add_argument("--size", default=None, help="input H,W for vgg16/mobilenet (default 224,224)")
    p.set_defaults(run=run)


def _pair(v):
    return "-" if v is None else (f"{v[0]}" if v[0] == v[1] else f"{v[0]}x{v[1]}")


def table(model):
    """The rows of the layer table as strings (header first)."""
    from ..fields import receptive_fields
    from ..graph import walk

    graph = walk(model)
    fields = receptive_fields(model)
    header = ("layer", "type", "output", "kernel/stride", "rf size", "rf stride", "rf padding")
    rows = [header]
    for step in graph.steps:
        shape = "x".join("?" if d is None else str(d) for d in step.output_shape)
        info = fields.get(step.name)
        if info is None:
            rows.append((step.name, step.type_name, shape, "", "", "", ""))
            continue
        ks = f"{_pair(info.kernel)}/{_pair(info.layer_stride)}" if info.kernel != (1, 1) or info.layer_stride != (1, 1) else ""
        size = _pair(info.size) + ("" if info.aligned else " *")
        rows.append((step.name, step.type_name, shape, ks, size, _pair(info.stride), _pair(info.padding)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(not f.aligned for f in fields.values()):
        lines.append("* merge of misaligned branches: the field covers every branch")
    return lines


def run(args):
    from . import parse_ints

    size = parse_ints(args.size, 2, "--size") if args.size else None
    preset = load_preset(args, size=size)
    print(f"model {preset.model.name} ({preset.name}), input {preset.input_size[0]}x{preset.input_size[1]}")
    print("\n".join(table(preset.model)))
    return 0
