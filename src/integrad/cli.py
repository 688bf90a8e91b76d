"""The ``integrad`` command: explain a whole dataset into a resumable run directory.

::

    integrad run --model mymodels:digits_cnn --data digits.npz --out runs/digits
    integrad info runs/digits

``--model MODULE:FACTORY`` imports ``MODULE`` with the current directory on ``sys.path``
(as ``python -m`` does) and calls ``FACTORY()`` for the model, or for ``(model,
tokenizer)`` when ``--data`` holds texts (``.txt``, ``.jsonl``). Running the same command
again resumes a stopped run. Exit codes: 0 done, 1 failed, 2 usage error (including a
resume with other settings), 130 interrupted (run the command again to resume).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["main"]

EXPLAINERS = {
    "ig": "ig",
    "layer-ig": "layer-ig",
    "noise-tunnel": "noise-tunnel",
    "expected-gradients": "expected-gradients",
    "guided-ig": "guided-ig",
    "blur-ig": "blur-ig",
    "saliency": "saliency",
}


class UsageError(Exception):
    """A command line that cannot work as written: exit code 2."""


def _parser() -> argparse.ArgumentParser:
    from .quadrature import METHODS

    parser = argparse.ArgumentParser(
        prog="integrad",
        description="Explain every example of a dataset with Integrated Gradients and its "
        "family, into a run directory that a stopped job resumes.",
        epilog="Exit codes: 0 done, 1 failed, 2 usage error, 130 interrupted (resumable).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = commands.add_parser(
        "run",
        help="explain a dataset (resumes when DIR holds the same run)",
        description="Explain every example of --data with --model; results go to --out. "
        "Running the same command again skips finished examples.",
    )
    r.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FACTORY",
        help="a function returning the torch model, imported with the current "
        "directory on sys.path, e.g. mymodels:build",
    )
    r.add_argument(
        "--data",
        required=True,
        metavar="PATH",
        help=".npz (array x, optional labels y), .npy, .csv or .parquet (a row per "
        "example), a folder with one subfolder of images per class, or texts: .txt (one "
        'per line) or .jsonl ({"text": ..., "label": K}), explained with layer-ig at the '
        "word embeddings of the model a (model, tokenizer) factory returns",
    )
    r.add_argument("--out", required=True, metavar="DIR", help="the run directory")
    r.add_argument(
        "--target",
        default="pred",
        metavar="pred|label|K",
        help="the explained output: the model's top class (pred, default), the "
        "data's label, or class K",
    )
    r.add_argument("--explainer", default="ig", choices=list(EXPLAINERS), help="default: ig")
    r.add_argument(
        "--rule",
        default=None,
        choices=[*METHODS, "exact"],
        help="quadrature rule (Python's method=); exact: region by region, for ReLU networks",
    )
    steps = r.add_mutually_exclusive_group()
    steps.add_argument("--n-steps", type=int, metavar="N", help="path points per example")
    steps.add_argument(
        "--tolerance",
        type=float,
        metavar="T",
        help="integrate each example until its estimated error is within T",
    )
    r.add_argument(
        "--baselines",
        default=None,
        metavar="NAME",
        help="zeros (default), uniform, gaussian, blur, max_entropy; for texts the token "
        "that replaces every word: pad (default), unk or mask",
    )
    r.add_argument(
        "--layer",
        default=None,
        metavar="DOTTED.NAME",
        help="the layer of layer-ig, e.g. encoder.layer.0 (texts: the word embeddings)",
    )
    r.add_argument("--label", default=None, metavar="COLUMN", help="the label column of a table")
    r.add_argument(
        "--batch-size",
        type=int,
        default=32,
        metavar="B",
        help="examples per explain call (default 32; chunking inside is automatic)",
    )
    r.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    r.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    r.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray"],
        help="local (default): this process, one batch after another; ray: a pool of "
        "Ray workers, each with its own model copy (joins the running Ray cluster: "
        "RAY_ADDRESS or `ray start` on this machine, else starts a local one; needs "
        "integrad[ray])",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="Ray workers (processes, each with a model copy; default: one per CPU of the "
        "cluster, or per GPU with --device cuda); the local backend is one process",
    )
    r.add_argument(
        "--no-store-inputs",
        action="store_true",
        help="store attributions without inputs and baselines, which Python reads back "
        "from the data: integrad.open_run(DIR, data=PATH) (ig, guided-ig, noise-tunnel, "
        "saliency with non-random baselines)",
    )
    r.add_argument("--no-progress", action="store_true", help="print no progress")
    rep = commands.add_parser(
        "report",
        help="summarise a run; --html writes the dataset report",
        description="Print a run's summary; with --html, write the dataset report: deltas "
        "and costs, worst-converged and most/least confident examples, mean attribution "
        "per class.",
    )
    rep.add_argument("dir", metavar="DIR")
    rep.add_argument("--html", metavar="FILE", help="write the dataset report to FILE")
    i = commands.add_parser(
        "info",
        help="what a run directory holds",
        description="Print a run's configuration, progress and deltas.",
    )
    i.add_argument("dir", metavar="DIR")
    return parser


def _factory(spec: str) -> Any:
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise UsageError(f"--model {spec!r} must be MODULE:FACTORY, e.g. mymodels:build")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"--model {spec!r}: cannot import {module_name!r} ({e})") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise UsageError(f"--model {spec!r}: {module_name!r} has no function {name!r}")
    return factory


def _target(text: str) -> Any:
    if text in ("pred", "label"):
        return text
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--target {text!r} must be pred, label or a class number") from None


def _texts(args: argparse.Namespace, model: Any, tokenizer: Any) -> tuple[Any, Any, Any]:
    """Texts as a run of :class:`TextModel`: (model, inputs, labels); sets the options."""
    from .runs.files import TextModel, encode, read_texts, token_baselines

    if tokenizer is None:
        raise UsageError(
            f"--data {args.data!r} holds texts: --model must return (model, tokenizer)"
        )
    if args.explainer not in ("ig", "layer-ig"):
        raise UsageError(
            f"--explainer {args.explainer} does not apply to texts: they are explained "
            "with layer-ig at the word embeddings"
        )
    texts, labels = read_texts(args.data)
    wrapped = TextModel(model)
    args.explainer = "layer-ig"
    args.layer = args.layer or wrapped.embeddings_name()
    args.baselines = token_baselines(tokenizer, args.baselines or "pad")
    return wrapped, encode(texts, tokenizer), labels


def _run(args: argparse.Namespace) -> int:
    from .runs import open_run, run
    from .runs.files import TEXT_SUFFIXES, read_data

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers} must be at least 1")
    if args.backend == "local" and args.workers not in (None, 1):
        raise UsageError(
            f"--workers {args.workers} needs --backend ray (on one machine it starts a "
            "local Ray with that many worker processes); the local backend is one process"
        )
    if args.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError("--backend ray needs Ray Data: pip install 'integrad[ray]'")
    model, tokenizer = _factory(args.model)(), None
    if isinstance(model, tuple) and len(model) == 2:
        model, tokenizer = model
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"--model {args.model!r} returned a {type(model).__name__}, not a Module")
    feature_names = None
    try:
        if str(args.data).lower().endswith(TEXT_SUFFIXES):
            model, inputs, labels = _texts(args, model, tokenizer)
        else:
            data = read_data(args.data, label=args.label)
            inputs, labels, feature_names = data.inputs, data.labels, data.feature_names
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    model = model.eval()
    if args.backend == "local":
        model = model.to(args.device)  # the CLI's own model: moved, not copied
    options: dict[str, Any] = {}
    for key, value in (
        ("method", args.rule),
        ("n_steps", args.n_steps),
        ("tolerance", args.tolerance),
        ("baselines", args.baselines),
        ("layer", args.layer),
    ):
        if value is not None:
            options[key] = value
    finished = run(
        model,
        inputs,
        out=args.out,
        labels=labels,
        explainer=EXPLAINERS[args.explainer],
        target=_target(args.target),
        batch_size=args.batch_size,
        seed=args.seed,
        progress=False if args.no_progress else None,
        feature_names=feature_names,
        backend=args.backend,
        workers=args.workers,
        device=args.device if args.backend == "ray" else None,
        store_inputs=not args.no_store_inputs,
        **options,
    )
    print(_info(open_run(finished.path)))
    return 0


def _info(run: Any) -> str:
    c = run.config
    lines = [
        f"run {str(run.path)!r}: {run.done} of {len(run)} examples explained"
        + ("" if run.complete else " (incomplete: run the same command to resume)"),
        f"  explainer={c['explainer']} target={c['target']} seed={c['seed']} "
        f"options={json.dumps(c['options'])}",
    ]
    if run.done:
        frame = run.summary()
        rel = frame["relative_delta"].astype(float)
        lines.append(
            f"  |delta| max {frame['delta'].abs().max():.3g}, relative delta median "
            f"{rel.median():.3g} max {rel.max():.3g}; evals/example "
            f"{frame['n_evals'].mean():.4g}; {frame['seconds'].sum():.3g} s of compute"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    from .runs import RunInterrupted, RunMismatchError, open_run

    parser = _parser()
    args = parser.parse_args(argv)  # exits with 2 on a usage error
    try:
        if args.command == "run":
            return _run(args)
        try:
            run = open_run(args.dir)
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(str(e)) from None
        print(_info(run))
        if getattr(args, "html", None):
            print(f"wrote {run.to_html(args.html)}")
        return 0
    except (UsageError, RunMismatchError) as e:
        parser.exit(2, f"integrad: error: {e}\n")
    except (RunInterrupted, KeyboardInterrupt) as e:
        message = str(e) or "interrupted"
        print(f"integrad: {message}; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:
        print(f"integrad: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
