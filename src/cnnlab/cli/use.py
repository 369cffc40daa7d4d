"""``cnnlab evaluate`` and ``cnnlab predict``: use a trained model on data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnlab.cli.common import (
    add_object_flags,
    add_plane_flags,
    check_out_file,
    object_choice,
    plane_choice,
)
from cnnlab.errors import CnnlabError


def add_commands(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="metrics of a trained model on data")
    evaluate.set_defaults(handler=_evaluate)
    evaluate.add_argument(
        "model", metavar="RUN_OR_MODEL", help="a run folder, or a model folder or its model.json"
    )
    evaluate.add_argument(
        "--data", action="append", metavar="SPEC", help="mnist or folders [the run's own subsets]"
    )
    evaluate.add_argument("--pattern", help="glob selecting image files in --data folders")
    evaluate.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave unusable files of --data out, with a count",
    )
    evaluate.add_argument(
        "--convert-bit-depth",
        action="store_true",
        help="scale 8-bit images among 16-bit ones to 16-bit (x257) instead of refusing",
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON")

    predict = commands.add_parser(
        "predict", help="classify image files or folders, or the objects of a whole field"
    )
    predict.set_defaults(handler=_predict)
    predict.add_argument(
        "model",
        metavar="MODEL",
        help="a run folder, a model folder or its model.json, or an .onnx file (cnnlab export)",
    )
    predict.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders")
    predict.add_argument("--pattern", help="glob selecting files inside folders")
    predict.add_argument(
        "--out", help="CSV file to write (refuses to overwrite without --overwrite)"
    )
    predict.add_argument(
        "--overwrite", action="store_true", help="replace the --out file (and its overlay)"
    )
    predict.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable files and files the model cannot take, with a count",
    )
    fields = predict.add_argument_group("a whole field instead of files")
    fields.add_argument("--field", metavar="FIELD", help="classify each object of this field image")
    fields.add_argument(
        "--overlay", metavar="PNG", help="the field with its objects outlined [beside --out]"
    )
    add_object_flags(predict)
    add_plane_flags(predict)


def _evaluate(args: argparse.Namespace) -> int:
    from cnnlab.evaluate import format_metrics
    from cnnlab.export.evaluation import evaluate_saved

    results = evaluate_saved(
        args.model,
        data=args.data,
        pattern=args.pattern,
        convert_bit_depth=args.convert_bit_depth,
        skip_bad=args.skip_bad,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            "\n\n".join(
                format_metrics(m, title=f"{name} ({m['n']} images)") for name, m in results.items()
            )
        )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from cnnlab.export import predict

    out = check_out_file("--out", args.out, args.overwrite, "preds.csv") if args.out else None
    if args.field:
        return _predict_field(args, out)
    if not args.paths:
        raise CnnlabError("predict: give image files or folders, or a whole field with --field")
    for flag in (
        "overlay",
        "rois",
        "labels",
        "margin",
        "size",
        "channel",
        "position",
        "time",
    ):
        if getattr(args, flag) is not None:
            raise CnnlabError(f"--{flag} is for a whole field: add --field FIELD or leave it out")
    # --plane also chooses the plane of TIFF stacks among image files, as in training.
    table = predict(
        _model(args.model),
        args.paths,
        pattern=args.pattern,
        skip_bad=args.skip_bad,
        plane=args.plane,
    )
    if out:
        table.to_csv(out)
        count = len(table.skipped)
        skipped = f" ({count} file{'' if count == 1 else 's'} skipped)" if count else ""
        what = "prediction" if len(table) == 1 else "predictions"
        print(f"wrote {len(table)} {what} to {out}{skipped}")
    else:
        table.to_csv(sys.stdout)
    return 0


def _model(path: str):
    """A run's model, or an ONNX file that ``cnnlab export`` wrote, run by ONNX Runtime."""
    if path.lower().endswith(".onnx"):
        from cnnlab.deploy import load_onnx

        return load_onnx(path)
    from cnnlab.export import load

    return load(path)


def _predict_field(args: argparse.Namespace, out: Path | None) -> int:
    """One CSV row per object of the field, an overlay picture and the counts per class."""
    from cnnlab.microscopy.classify import classify_field, default_overlay_path

    if args.paths:
        raise CnnlabError(
            f"predict --field: {args.paths[0]} is a second input; classify files or a field, "
            "not both"
        )
    if args.pattern or args.skip_bad:
        flag = "--pattern" if args.pattern else "--skip-bad"
        raise CnnlabError(f"{flag} is for image files, not for --field; leave it out")
    overlay = None
    if args.overlay:
        # The overlay is always PNG bytes: a .jpg name would hold a file no viewer expects.
        if Path(args.overlay).suffix.lower() != ".png":
            raise CnnlabError(f"--overlay {args.overlay}: the overlay is a PNG; name it *.png")
        overlay = check_out_file("--overlay", args.overlay, args.overwrite, "field.png")
    elif out:
        overlay = default_overlay_path(out)
        if overlay.exists() and not args.overwrite:
            raise CnnlabError(
                f"--out {out}: its overlay picture {overlay} exists; pass --overwrite, or "
                "--overlay OTHER.png to put the picture elsewhere"
            )
    result = classify_field(
        _model(args.model),
        args.field,
        **object_choice(args, "predict --field"),
        **plane_choice(args),
    )
    if out:
        result.to_csv(out)
    else:
        result.to_csv(sys.stdout)
    if overlay:
        result.write_overlay(overlay)
    # Counts are results, but with the CSV on stdout they would corrupt it: stderr then.
    report = sys.stdout if out else sys.stderr
    print(result.summary_text(), file=report)
    if out:
        print(f"wrote {len(result)} object predictions to {out}", file=report)
    if overlay:
        print(f"wrote the overlay to {overlay}", file=report)
    return 0
