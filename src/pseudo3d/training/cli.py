"""The training subcommands of ``pseudo3d``: ``train pretrain|finetune``, ``eval``, ``animate``.

Each names its input files (``inputs``) so that the command line can name them when reading one
fails (see :mod:`pseudo3d.cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pseudo3d.errors import Pseudo3DError

TRAIN_FLAGS = {  # flag → TrainConfig field; None values keep the default
    "steps": int, "batch_size": int, "window_s": float, "learning_rate": float, "warmup_steps": int,
    "velocity_weight": float, "lip_weight": float, "seed": int, "num_workers": int, "log_every": int,
    "val_every": int, "checkpoint_every": int, "norm_windows": int, "device": str,
}


def _train_config(args: argparse.Namespace, **defaults):
    from pseudo3d.training.config import TrainConfig

    values = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name, None) is not None}
    for flag in ("audio_shuffle", "freeze_encoder", "new_head"):
        if getattr(args, flag, False):
            values[flag] = True
    return TrainConfig(**{**defaults, **values})


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise Pseudo3DError("training needs PyTorch: pip install 'pseudo3d[train]'") from None


def cmd_pretrain(args: argparse.Namespace) -> int:
    _require_torch()
    from pseudo3d.training.runs import pretrain

    job = pretrain(args.data, args.out, _train_config(args), model_kind=args.model, progress=not args.quiet)
    _report(job, args.out)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    _require_torch()
    from pseudo3d.training.runs import finetune

    if args.init is None and not args.from_scratch:
        raise Pseudo3DError("finetune needs --init RUN (or --from-scratch for a baseline)")
    config = _train_config(args, learning_rate=1e-4, val_every=50)
    job = finetune(args.data, args.format, args.out, config, init=None if args.from_scratch else args.init,
                   model_kind=args.model, progress=not args.quiet)
    _report(job, args.out)
    return 0


def _report(job, out) -> None:
    """One line about the run, from rank 0 (every process of a torchrun run waits here for the
    others, then leaves the process group)."""
    from pseudo3d.training import distributed

    processes = distributed.setup(job.config.device)
    distributed.finish(processes)
    if not processes.main:
        return
    losses = [entry["loss_mean"] for entry in job.history if "loss_mean" in entry]
    validation = [entry["val_loss"] for entry in job.history if entry.get("val_loss") is not None]
    line = f"trained {out}: loss {losses[0]:.4f} → {losses[-1]:.4f}" if losses else f"trained {out}"
    if validation:
        line += f", validation loss {validation[-1]:.4f}"
    print(line + f" (metrics: {Path(out) / 'metrics.jsonl'}, TensorBoard: {Path(out) / 'tensorboard'})")


def cmd_eval(args: argparse.Namespace) -> int:
    _require_torch()
    from pseudo3d.training.evaluate import evaluate

    result = evaluate(args.checkpoint, args.data, args.format, masks=args.masks, split=args.split)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


def cmd_animate(args: argparse.Namespace) -> int:
    _require_torch()
    from pseudo3d.training.animate import animate

    result = animate(args.audio, args.checkpoint, args.out, csv=args.csv, preview=args.preview,
                     template=args.template, flame_model=args.flame_model)
    frames = int(result.arrays["n_frames"])
    print(f"wrote {args.out}: {frames} frames at {float(result.arrays['fps']):g} fps "
          f"({', '.join(sorted(k for k in result.arrays if k not in ('fps', 'n_frames')))})")
    for label, path in (("CSV", args.csv), ("preview", args.preview)):
        if path:
            print(f"wrote {label}: {path}")
    return 0


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory (created, or resumed if it exists)")
    parser.add_argument("--model", choices=["hierarchical", "convrnn"], default="hierarchical",
                        help="hierarchical audio encoder (default) or the convolutional-recurrent model")
    for name, kind in TRAIN_FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, dest=name)
    parser.add_argument("--audio-shuffle", action="store_true",
                        help="control run: pair each window with another window's audio")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_commands(commands) -> None:
    train = commands.add_parser("train", help="pretrain on pseudo3d shards or finetune on 3D captures")
    stages = train.add_subparsers(dest="stage", required=True, metavar="STAGE")

    pre = stages.add_parser("pretrain", help="train on pseudo3d datasets (shards)")
    pre.add_argument("--data", nargs="+", required=True, metavar="DATASET[@WEIGHT]",
                     help="dataset directories, shard globs or URLs; @WEIGHT mixes several")
    _add_train_options(pre)
    pre.set_defaults(func=cmd_pretrain, inputs=("data",))

    fine = stages.add_parser("finetune", help="finetune a run on VOCASET- or BEAT-layout data")
    fine.add_argument("--init", metavar="RUN", help="the pretrained run to start from")
    fine.add_argument("--from-scratch", action="store_true", help="start from random weights (the baseline)")
    fine.add_argument("--data", required=True, metavar="ROOT", help="VOCASET-layout or BEAT-layout folder")
    fine.add_argument("--format", required=True, choices=["vocaset", "beat"])
    fine.add_argument("--freeze-encoder", action="store_true", help="keep the audio encoder fixed")
    fine.add_argument("--new-head", action="store_true", help="replace the output head (new topology or output kind)")
    _add_train_options(fine)
    fine.set_defaults(func=cmd_finetune, inputs=("data", "init"))

    evaluate = commands.add_parser("eval", help="evaluate a run (LVE, FDD, MVE, lip-audio correlation)")
    evaluate.add_argument("--checkpoint", required=True, metavar="RUN")
    evaluate.add_argument("--data", required=True, metavar="DATA")
    evaluate.add_argument("--format", choices=["shards", "vocaset", "beat"], default="shards")
    evaluate.add_argument("--masks", metavar="PKL", help="FLAME_masks.pkl-layout regions (lips, forehead, eye_region)")
    evaluate.add_argument("--split", choices=["val", "train"], default="val", help="finetune data split (default val)")
    evaluate.add_argument("--json", metavar="PATH", help="also write the metrics here")
    evaluate.set_defaults(func=cmd_eval, inputs=("checkpoint", "data", "masks"))

    animate = commands.add_parser("animate", help="speech → facial motion with a trained run")
    animate.add_argument("audio", metavar="AUDIO",
                         help="an audio file (wav, flac, mp3, aac, m4a, ogg/opus, ...) or a video file's audio track")
    animate.add_argument("--checkpoint", required=True, metavar="RUN")
    animate.add_argument("--out", required=True, metavar="OUT.npz")
    animate.add_argument("--csv", metavar="CSV", help="blendshape runs: also write Live Link Face CSV")
    animate.add_argument("--preview", metavar="MP4", help="also render the animated mesh with the audio")
    animate.add_argument("--template", metavar="NPY", help="(V, 3) template to add to predicted offsets")
    animate.add_argument("--flame-model", metavar="PKL", help="FLAME model to turn FLAME parameters into vertices")
    animate.set_defaults(func=cmd_animate, inputs=("audio", "checkpoint", "template", "flame_model"))
