"""``layerscope rf``: receptive fields, border layers and advice for a registered model."""

from __future__ import annotations

import argparse
import ast
import json
import math
from fractions import Fraction

from layerscope.errors import OptionError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rf",
        help="receptive field of every layer, border layers and advice for an input size",
        description="Trace a registered model (see layerscope.models.list_models), print r_min "
        "and r_max of every recorded layer and mark the border layers b_min / b_max for the "
        "input size (dissertation 4.4, 9.3, 10.2). Layers marked * are predicted unproductive.",
    )
    parser.add_argument("model", help="registered model name, e.g. vgg16, resnet18_cifar")
    parser.add_argument("--input", type=int, default=32, metavar="I", help="input size (32)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, repeatable: --set width=0.25 --set skip=false --set dilation=3",
    )
    parser.add_argument("--trace-size", type=int, help="run the model at this size instead")
    parser.add_argument("--in-channels", type=int, default=3, help="input channels (3)")
    parser.add_argument("--gates", choices=("ignore", "include"), default="ignore")
    parser.add_argument("--tracer", choices=("auto", "fx", "hooks"), default="auto")
    parser.add_argument(
        "--border-rule",
        choices=("input", "output"),
        default="input",
        help="input (default): each layer's input exceeds I (dissertation 10.2, figures 52-53); "
        "output: the layer's own r exceeds I, 1x1 shortcut convolutions not counted (figure 60)",
    )
    parser.add_argument("--all", action="store_true", help="also list pooling and resampling")
    parser.add_argument("--no-advice", action="store_true", help="skip truncation advice")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def parse_option(text: str) -> tuple[str, object]:
    """``"width=1/4"`` -> ``("width", 0.25)``; booleans, None, numbers, tuples or strings."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise OptionError(f"--set expects KEY=VALUE, got {text!r}")
    raw = raw.strip()
    words = {"true": True, "false": False, "none": None, "null": None}
    if raw.lower() in words:
        return key.strip(), words[raw.lower()]
    try:
        return key.strip(), ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        pass
    try:
        return key.strip(), float(Fraction(raw))
    except (ValueError, ZeroDivisionError):
        return key.strip(), raw


def _json_value(value):
    if isinstance(value, float) and math.isinf(value):
        return "global"
    return value


def _size(value) -> str:
    return "global" if value == math.inf else str(value)


def _axes(values) -> str:
    values = list(values)
    if not values:
        return "-"
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def run(args: argparse.Namespace) -> int:
    from layerscope.architecture import advise, receptive_field
    from layerscope.models import create_model

    options = dict(parse_option(text) for text in args.set)
    model = create_model(args.model, in_channels=args.in_channels, **options)
    rf = receptive_field(
        model,
        args.input,
        trace_size=args.trace_size,
        in_channels=args.in_channels,
        gates=args.gates,
        tracer=args.tracer,
        border_rule=args.border_rule,
    )
    advice = None if args.no_advice else advise(model, args.input, rf=rf)
    records = rf.to_records(all_operations=args.all)
    if args.json:
        payload = {
            "model": args.model,
            "options": options,
            "input_size": list(rf.input_size_),
            "tracer": rf.tracer_,
            "border_rule": rf.border_rule,
            "border_min": _border(rf, "min"),
            "border_max": _border(rf, "max"),
            "layers": [{k: _json_value(v) for k, v in row.items()} for row in records],
            "notes": rf.notes_,
        }
        if advice is not None:
            payload["advice"] = {
                "parameters": advice.parameters,
                "parameters_truncated": advice.parameters_truncated,
                "macs": advice.macs,
                "macs_truncated": advice.macs_truncated,
                "macs_size": list(advice.macs_size),
                "strides_to_remove": advice.strides_to_remove,
                "notes": list(advice.notes),
                "text": advice.lines(),
            }
        print(json.dumps(payload, indent=2))
        return 0
    _print_table(args, rf, records)
    if advice is not None:
        print()
        for line in advice.lines():
            print(line)
    return 0


def _border(rf, which: str) -> dict | None:
    """A border as JSON; ``layer`` is its label under the rule (shortcuts not numbered for
    ``output``), ``index`` its position among all recorded layers."""
    info = rf.border_min_ if which == "min" else rf.border_max_
    if info is None:
        return None
    return {"name": info.name, "index": info.index, "layer": rf.border_number(which)}


def _print_table(args, rf, records) -> None:
    header = ("#", "name", "type", "kernel", "stride", "in r_min", "in r_max", "r_min", "r_max", "")
    rows = []
    # numbered as the border rule counts: shortcut convolutions show "-" under "output"
    numbers = {info.name: str(i + 1) for i, info in enumerate(rf.counted_)}
    for row in records:
        mark = row["border"] + (" *" if row["unproductive"] else "")
        rows.append((
            "" if row["index"] is None else numbers.get(row["name"], "-"),
            row["name"], row["type"], _axes(row["kernel"]), _axes(row["stride"]),
            _size(row["input_r_min"]), _size(row["input_r_max"]),
            _size(row["r_min"]), _size(row["r_max"]), mark.strip(),
        ))  # fmt: skip
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    size = "x".join(map(str, rf.input_size_))
    print(f"{args.model} at {size} px (traced with {rf.tracer_}); layers numbered from 1")
    for row in (header, *rows):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    counted = "" if rf.border_rule == "input" else ", shortcut convolutions not numbered"
    for name, info in (("b_min", rf.border_min_), ("b_max", rf.border_max_)):
        number = rf.border_number(name[2:])
        where = "none" if info is None else f"layer {number} ({info.name})"
        print(f"{name}: {where}  [border rule {rf.border_rule}{counted}]")
    for note in rf.notes_:
        print(f"note: {note}")
