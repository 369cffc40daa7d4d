"""``cnnlab evaluate`` and ``cnnlab predict``: use a trained model on data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnlab.errors import CnnlabError


def add_commands(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="metrics of a trained model on data")
    evaluate.set_defaults(handler=_evaluate)
    evaluate.add_argument("model", metavar="RUN_OR_MODEL")
    evaluate.add_argument(
        "--data", action="append", metavar="SPEC", help="mnist or folders [the run's own subsets]"
    )
    evaluate.add_argument("--pattern")
    evaluate.add_argument("--json", action="store_true", help="print JSON")

    predict = commands.add_parser("predict", help="classify image files or folders")
    predict.set_defaults(handler=_predict)
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--pattern", help="glob selecting files inside folders")
    predict.add_argument(
        "--out", help="CSV file to write (refuses to overwrite without --overwrite)"
    )
    predict.add_argument("--overwrite", action="store_true")


def _evaluate(args: argparse.Namespace) -> int:
    from cnnlab.evaluate import format_metrics
    from cnnlab.export.evaluation import evaluate_saved

    results = evaluate_saved(args.model, data=args.data, pattern=args.pattern)
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
    from cnnlab.export import load, predict

    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise CnnlabError(f"--out {out}: is a folder; give a file name such as preds.csv")
        if out.parent.is_file():
            raise CnnlabError(f"--out {out}: {out.parent} is a file, not a folder")
        if not out.parent.is_dir():
            raise CnnlabError(
                f"--out {out}: the folder {out.parent} does not exist; create it first"
            )
        if out.is_file() and not args.overwrite:  # devices and pipes are streams
            raise CnnlabError(f"--out {out}: exists; choose another file or pass --overwrite")
    table = predict(load(args.model), args.paths, pattern=args.pattern)
    if args.out:
        table.to_csv(args.out)
        print(f"wrote {len(table)} predictions to {args.out}")
    else:
        table.to_csv(sys.stdout)
    return 0
