"""The ``pseudo3d`` command line.

Errors reach the user as one line on stderr and exit status 2, never as a traceback: a
:class:`~pseudo3d.errors.Pseudo3DError` with its message, and any other exception (a reader of
user data failing in its own way: a corrupt tar, JSON that is not JSON, a truncated FLAC) with
the command's input files named, the exception's type and message. ``pseudo3d -v`` also prints
the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from pseudo3d.errors import ConfigError, Pseudo3DError

log = logging.getLogger("pseudo3d")


def _number(text: str, kind: type, least: float, strict: bool = False):
    """``text`` as a ``kind`` (int or float) of at least ``least`` (above it where ``strict``), or
    an error argparse prints after the option's name."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a {'whole ' if kind is int else ''}number, got {text!r}") from None
    if value < least or (strict and not value > least):
        raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {least}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _number(text, int, 1)


def _non_negative_int(text: str) -> int:
    return _number(text, int, 0)


def _positive_float(text: str) -> float:
    return _number(text, float, 0, strict=True)


def _synthesise(out: Path, *, videos: int, seconds: float, seed: int, bad_inputs: bool, quiet: bool,
                workers: int = 0) -> list[Path]:
    from tqdm import tqdm

    from pseudo3d.synth.corpus import make_corpus

    with tqdm(total=videos + 3 * bad_inputs, unit="file", desc="synth", disable=quiet) as bar:
        def progress(done: int, total: int, name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(done - bar.n)

        return make_corpus(out, n_videos=videos, seconds=seconds, seed=seed, bad_inputs=bad_inputs,
                           progress=progress, workers=workers)


def _synthesise_bad_corpus(out: Path, *, seed: int, quiet: bool) -> list[Path]:
    from tqdm import tqdm

    from pseudo3d.synth.bad_corpus import BAD_KINDS, make_bad_corpus

    with tqdm(total=len(BAD_KINDS), unit="file", desc="synth", disable=quiet) as bar:
        def progress(done: int, total: int, name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(done - bar.n)

        return list(make_bad_corpus(out, seed=seed, progress=progress).values())


def cmd_synth(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.bad_corpus:
        paths = _synthesise_bad_corpus(Path(args.out), seed=args.seed, quiet=args.quiet)
        print(f"wrote {len(paths)} broken, odd or hostile input(s) to {args.out} in "
              f"{time.perf_counter() - start:.1f} s (what a build does with each: docs/hardening.md)")
        return 0
    paths = _synthesise(Path(args.out), videos=args.videos, seconds=args.seconds, seed=args.seed,
                        bad_inputs=args.bad_inputs, quiet=args.quiet, workers=args.workers)
    print(f"wrote {len(paths)} file(s) to {args.out} in {time.perf_counter() - start:.1f} s "
          "(ground truth beside each video as NAME.truth.json)")
    return 0


def _build_config(args: argparse.Namespace):
    from pseudo3d.config import BuildConfig

    config = BuildConfig.from_yaml(args.config) if args.config else BuildConfig()
    overrides: dict = {}
    if args.backend:
        overrides["backend"] = args.backend
    if args.fps is not None:
        overrides["decode"] = {"fps": args.fps}
    if args.min_clip_s is not None:
        overrides["track"] = {"min_clip_s": args.min_clip_s}
    if args.sync_model is not None:
        overrides["qa"] = {"sync_model": _absolute(args.sync_model)}
    reconstruct = {name: value for name, value in (
        ("flame_model", _absolute(args.flame_model)), ("landmark_embedding", _absolute(args.landmark_embedding)),
        ("deca_checkpoint", _absolute(args.deca_checkpoint)),
        ("spectre_checkpoint", _absolute(args.spectre_checkpoint)), ("device", args.device), ("batch_size", args.batch_size),
        ("precision", args.precision), ("flame_profile", args.flame_profile),
    ) if value is not None}
    if reconstruct:
        overrides["reconstruct"] = reconstruct
    return config.with_overrides(**overrides) if overrides else config


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def cmd_build(args: argparse.Namespace) -> int:
    from pseudo3d.pipelines.runners.local import build_local
    from pseudo3d.pipelines.sources import resolve_sources

    from pseudo3d.storage import protocol_of

    config = _build_config(args)
    if protocol_of(args.out) == "memory":
        raise Pseudo3DError(f"--out {args.out}: a memory:// dataset ends with this process; build into a directory "
                            "or an object store (memory:// datasets are for the Python API)")
    _storage_options(args, args.out, *args.inputs, required=False)  # before listing remote inputs
    if args.address is not None and args.runner != "ray":
        raise Pseudo3DError("--address is for --runner ray")
    if args.beam_option and args.runner != "beam":
        raise Pseudo3DError("--beam-option is for --runner beam")
    sources = resolve_sources(args.inputs, config.limits.allowed_protocols)
    _storage_options(args, args.out, *(source.uri for source in sources))  # with the URLs list files name
    common = {"workers": args.workers, "overwrite": args.overwrite, "retry_failed": args.retry_failed,
              "progress": not args.quiet}
    if args.runner == "beam":
        report = _runner("beam", "Apache Beam").build_beam(sources, args.out, config,
                                                           options=args.beam_option, **common)
    elif args.runner == "ray":
        report = _runner("ray", "Ray").build_ray(sources, args.out, config, address=args.address, **common)
    else:
        report = build_local(sources, args.out, config, **common)
    print(format_report(report))
    return 0


def _storage_options(args: argparse.Namespace, *targets: str, required: bool = True) -> None:
    """``--storage-option KEY=VALUE``: keyword arguments of the filesystem of the URLs among
    ``targets`` (the dataset, the inputs), for every filesystem of that protocol this command and
    its workers open. Raises :class:`ConfigError` when there is no URL among the targets (and
    ``required``), or URLs of several protocols (each then takes its standard environment)."""
    from pseudo3d.storage import apply_storage_options, parse_storage_options, protocol_of

    options = parse_storage_options(args.storage_option)
    protocols = sorted({protocol_of(target) for target in targets} - {"file", "local"})
    if options and not protocols and required:
        raise ConfigError(f"--storage-option is for datasets and inputs behind a URL (s3://, gs://, ...); "
                          f"{' '.join(targets[:3])} are local")
    if options and len(protocols) > 1:
        raise ConfigError(f"--storage-option applies to one protocol, and this command uses {', '.join(protocols)}: "
                          "give each store's settings through its standard environment instead")
    for protocol in protocols:
        apply_storage_options(protocol, options)


def _runner(name: str, needs: str):
    """The runner module for ``--runner name``, or an error saying which extra installs it."""
    try:
        return importlib.import_module(f"pseudo3d.pipelines.runners.{name}")
    except ImportError as exc:
        raise Pseudo3DError(f"--runner {name} needs {needs}: pip install 'pseudo3d[{name}]' ({exc})") from None


def format_report(report) -> str:
    card = report.card
    counts, hours = card["counts"], card["hours"]
    lines = [
        f"built {report.out} in {report.seconds:.1f} s "
        f"({report.frames_per_second:.1f} frames/s over {report.processed} video(s) processed, "
        f"{report.skipped} already built)",
        f"  inputs {counts['inputs']}: ok {counts['ok']}, failed {counts['failed']}",
        f"  clips {counts['clips']} ({counts['frames']} frames, {hours['kept'] * 60:.2f} min kept "
        f"of {hours['input'] * 60:.2f} min input) in {counts['shards']} shard(s)",
    ]
    if counts["failures_by_error"]:
        reasons = ", ".join(f"{error} {n}" for error, n in counts["failures_by_error"].items())
        lines.append(f"  failure rows: {reasons}  (see failures/)")
    lines.append(f"  manifest: {report.storage.url_of('manifest/')}")
    if report.qa_report is not None:
        lines.append(f"  QA report: {report.qa_report}")
    return "\n".join(lines)


def cmd_qa(args: argparse.Namespace) -> int:
    import json

    from pseudo3d.qa.report import format_summary, qa_summary, write_report
    from pseudo3d.qa.report.data import load_dataset
    from pseudo3d.storage import Storage, write_bytes

    _storage_options(args, args.dataset)
    dataset = Storage(args.dataset, option="DATASET")
    dataset.check()
    if args.json:
        _check_writable(args.json, "--json")
    loaded = load_dataset(dataset)  # once, for the page and the summary
    path = write_report(loaded, gallery_size=args.gallery, flame_model=_absolute(args.flame_model))
    summary = qa_summary(loaded)
    print(format_summary(summary))
    print(f"QA report: {path}")
    if args.json:
        write_bytes(args.json, (json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n").encode(), "--json")
        print(f"summary JSON: {args.json}")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pseudo3d.pipelines.compact import compact_dataset

    _storage_options(args, args.dataset)
    bars: list[tqdm] = []  # drawn from the first run merged: a refusal stays one line

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="unit", desc="compact", disable=args.quiet))
        bars[0].update(done - bars[0].n)

    try:
        report = compact_dataset(args.dataset, max_rows=args.max_rows, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    tables = ", ".join(f"{table} {report.parts_before[table]} -> {report.parts_after[table]}"
                       for table in report.parts_before)
    done = (f"merged {report.written} run(s) of units" if report.written else
            "nothing to merge (each run of units that fits in --max-rows is one part already)")
    print(f"compacted {report.url} ({report.units} units) in {report.seconds:.1f} s: {done}")
    print(f"  parts: {tables}")
    return 0


def _check_writable(target: str, option: str) -> None:
    """Refuse, before any work, an output file whose folder does not exist or cannot be reached."""
    from pseudo3d.storage import Storage, is_local

    if is_local(target):
        folder = Path(os.path.abspath(os.path.expanduser(target))).parent
        if not folder.is_dir():
            raise Pseudo3DError(f"{option} {target}: the folder {folder} does not exist")
        return
    parent = target.rstrip("/").rpartition("/")[0]
    Storage(parent, option=option).check()


def cmd_inspect(args: argparse.Namespace) -> int:
    _storage_options(args, args.path)
    print(_describe(args.path))
    return 0


def _describe(path: str | Path) -> str:
    """``inspect``'s text of a dataset or a shard (a local path or a URL)."""
    from pseudo3d.qa.report import describe_dataset, describe_shard
    from pseudo3d.storage import Storage

    text = str(path)
    storage = Storage(text, option="inspect")
    storage.check()
    if text.endswith(".tar"):
        parent, _, name = text.rstrip("/").rpartition("/")
        folder = Storage(parent or ".", option="inspect")
        if folder.is_file(name):
            return describe_shard(folder, name)
    if not storage.exists() or storage.is_file(""):
        raise Pseudo3DError(f"{text} is neither a dataset directory nor a .tar shard")
    return describe_dataset(storage)


def cmd_demo(args: argparse.Namespace) -> int:
    from pseudo3d.config import BuildConfig
    from pseudo3d.pipelines.runners.local import build_local
    from pseudo3d.pipelines.sources import resolve_sources

    root = Path(args.out)
    corpus, dataset = root / "corpus", root / "dataset"
    print(f"[1/3] synthesising {args.videos} talking-head videos (+3 deliberately bad inputs) into {corpus}")
    _synthesise(corpus, videos=args.videos, seconds=args.seconds, seed=args.seed, bad_inputs=True, quiet=args.quiet,
                workers=args.workers)
    print(f"[2/3] building the pseudo-3D dataset into {dataset}")
    report = build_local(resolve_sources([str(corpus)]), dataset, BuildConfig(), workers=args.workers,
                         overwrite=True, progress=not args.quiet)
    print(format_report(report))
    print(f"[3/3] what was made:\n{_describe(dataset)}")
    print(f"\nThe shards are plain tars (WebDataset layout); list one without pseudo3d:\n"
          f"  python -c \"import tarfile; print(tarfile.open('{dataset}/{report.card['files']['shards'][0]}').getnames()[:15])\"\n"
          f"Ground truth for each synthetic video is in {corpus}/NAME.truth.json; see README.md for reading\n"
          "the shards with webdataset or pandas.")
    return 0


def make_parser() -> argparse.ArgumentParser:
    import pseudo3d
    from pseudo3d.config import FLAME_PROFILES, PRECISIONS
    from pseudo3d.pipelines.compact import MAX_ROWS
    from pseudo3d.pipelines.output_dir import RETRY_FAILED
    from pseudo3d.reconstruction import BACKENDS

    parser = argparse.ArgumentParser(prog="pseudo3d", description=(
        "Turn 2D talking-head videos into pseudo-3D facial motion datasets."))
    parser.add_argument("--version", action="version", version=f"pseudo3d {pseudo3d.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser("synth", help="write a synthetic talking-head corpus with ground truth")
    synth.add_argument("out", metavar="OUT", help="output directory")
    synth.add_argument("--videos", type=_positive_int, default=6, help="number of videos (default 6)")
    synth.add_argument("--seconds", type=_positive_float, default=8.0, help="typical video length (default 8)")
    synth.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    synth.add_argument("--bad-inputs", action="store_true",
                       help="also write a non-video, a truncated file and a video without a face")
    synth.add_argument("--bad-corpus", action="store_true",
                       help="write the bad-input corpus instead: one file of each broken, odd or hostile kind "
                            "(see docs/hardening.md)")
    synth.add_argument("--workers", type=_non_negative_int, default=0,
                       help="processes rendering videos side by side (default: all cores)")
    synth.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=cmd_synth, inputs=())

    build = commands.add_parser("build", help="build a dataset from videos")
    build.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="directory, glob, video file or list file (.csv/.tsv/.parquet with a 'path' column, or .txt)")
    build.add_argument("--out", required=True, metavar="DATASET",
                       help="dataset directory or URL (s3://bucket/ds, gs://..., memory://...), created or resumed")
    _add_storage_option(build)
    build.add_argument("--runner", choices=["local", "ray", "beam"], default="local",
                       help="execution engine: local processes (default), a Ray cluster or an Apache Beam pipeline")
    build.add_argument("--address", metavar="auto|HOST:PORT|ray://HOST:PORT",
                       help="Ray cluster to join (default: start a private one on 127.0.0.1)")
    build.add_argument("--beam-option", action="append", default=[], metavar="KEY=VALUE",
                       help="Beam pipeline option, repeatable, e.g. runner=FlinkRunner "
                            "(default: the DirectRunner on this machine; KEY alone for a switch)")
    build.add_argument("--backend", choices=sorted(BACKENDS), default=None,
                       help="reconstruction backend (default mediapipe; deca, spectre and flame-fit need FLAME assets)")
    build.add_argument("--config", metavar="YAML", help="build configuration file (see configs/build.yaml)")
    build.add_argument("--workers", type=_non_negative_int, default=0,
                       help="worker processes, Ray CPU actors or DirectRunner workers (default: all cores)")
    build.add_argument("--fps", type=_positive_float, default=None, help="output frame rate (overrides decode.fps)")
    build.add_argument("--min-clip-s", type=_positive_float, default=None,
                       help="shortest clip kept, seconds (overrides track.min_clip_s)")
    build.add_argument("--flame-model", metavar="PKL", help="FLAME model (generic_model.pkl or flame2023_Open.pkl)")
    build.add_argument("--landmark-embedding", metavar="FILE",
                       help="FLAME landmark embedding (mediapipe_landmark_embedding.npz, or DECA's landmark_embedding.npy)")
    build.add_argument("--deca-checkpoint", metavar="TAR", help="DECA's deca_model.tar")
    build.add_argument("--spectre-checkpoint", metavar="TAR", help="SPECTRE's spectre_model.tar (backend spectre)")
    build.add_argument("--flame-profile", choices=FLAME_PROFILES, default=None,
                       help="tfhp: also write DiffPoseTalk TFHP's arrays and smoothing (tfhp_shape, tfhp_exp, tfhp_pose; "
                            "FLAME backends, 25 fps, 16 kHz)")
    build.add_argument("--sync-model", metavar="FILE",
                       help="SyncNet weights (VGG's syncnet_v2.model): also score every clip's lip sync as LSE-D/LSE-C "
                            "and filter on them (sets qa.sync_model; see docs/qa.md)")
    build.add_argument("--device", help="reconstruction (and SyncNet) device: auto (default), cpu, cuda, cuda:N")
    build.add_argument("--batch-size", type=_positive_int, help="frames per GPU batch (default 256)")
    build.add_argument("--precision", choices=PRECISIONS,
                       help="deca on CUDA: fp32 (default; reproducible) or bf16 (faster); the CPU runs fp32")
    build.add_argument("--overwrite", action="store_true", help="replace an existing dataset instead of resuming it")
    build.add_argument("--retry-failed", nargs="?", const="transient", choices=RETRY_FAILED, metavar="transient|all",
                       help="when resuming, also build again the failed sources whose failure was transient (a crashed "
                            "or timed-out worker, an I/O error, out of memory), or with =all every failed source; "
                            "their new rows replace the old ones")
    build.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=cmd_build, inputs=("inputs", "out", "config"))

    qa = commands.add_parser("qa", help="redraw DATASET/qa/report.html and print the QA summary")
    qa.add_argument("dataset", metavar="DATASET", help="dataset directory or URL")
    _add_storage_option(qa)
    qa.add_argument("--json", metavar="PATH", help="also write the summary as JSON (for dashboards)")
    qa.add_argument("--gallery", type=_non_negative_int, default=6, help="sample clips in the report's gallery (default 6)")
    qa.add_argument("--flame-model", metavar="PKL",
                    help="FLAME model to draw the gallery's meshes of a deca or flame-fit dataset with (the card "
                         "records the model's SHA-256, not its path)")
    qa.set_defaults(func=cmd_qa, inputs=("dataset",))

    compact = commands.add_parser("compact", help="merge the index parts of DATASET (one per unit) into a few large ones")
    compact.add_argument("dataset", metavar="DATASET", help="dataset directory or URL")
    _add_storage_option(compact)
    compact.add_argument("--max-rows", type=_positive_int, default=MAX_ROWS,
                         help=f"rows of each table in one merged part (default {MAX_ROWS:,})")
    compact.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    compact.set_defaults(func=cmd_compact, inputs=("dataset",))

    from pseudo3d.training.cli import add_commands as add_training_commands

    add_training_commands(commands)

    inspect = commands.add_parser("inspect", help="summarise a dataset directory or a shard")
    inspect.add_argument("path", metavar="DATASET_OR_SHARD", help="dataset directory, .tar shard, or their URL")
    _add_storage_option(inspect)
    inspect.set_defaults(func=cmd_inspect, inputs=("path",))

    demo = commands.add_parser("demo", help="synthesise a small corpus, build it and show the result")
    demo.add_argument("--out", default="pseudo3d-demo", help="demo directory (default ./pseudo3d-demo)")
    demo.add_argument("--videos", type=_positive_int, default=6)
    demo.add_argument("--seconds", type=_positive_float, default=8.0)
    demo.add_argument("--seed", type=_non_negative_int, default=0)
    demo.add_argument("--workers", type=_non_negative_int, default=0)
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=cmd_demo, inputs=())
    return parser


def _add_storage_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                         help="filesystem option for a dataset behind a URL, repeatable, e.g. "
                              "endpoint_url=http://127.0.0.1:9000 or anon=true (s3fs's, gcsfs's... keyword "
                              "arguments; default: the standard environment, AWS_* variables and profiles for S3)")


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except Pseudo3DError as exc:
        if args.verbose:
            traceback.print_exc()
        print(_one_line(f"pseudo3d {args.command}: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pseudo3d {args.command}: interrupted; committed shards are kept and a re-run resumes",
              file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - whatever a reader of user data raises, one line
        if args.verbose:
            traceback.print_exc()
        print(_one_line(f"pseudo3d {args.command}: error: {describe_failure(args, exc)}"), file=sys.stderr)
        return 2


def describe_failure(args: argparse.Namespace, exc: BaseException) -> str:
    """``exc`` in words for one line: the file it names (an ``OSError``'s) or else the command's
    input files, then the exception's type and message."""
    named = getattr(exc, "filename", None)
    where = str(named) if named else _inputs(args)
    kind = type(exc).__name__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        kind = f"{module.split('.')[0]}.{kind}"
    reason = str(exc) or "no details"
    hint = "" if args.verbose else " (pseudo3d -v shows the traceback)"
    return f"{where}: {kind}: {reason}{hint}" if where else f"{kind}: {reason}{hint}"


def _inputs(args: argparse.Namespace) -> str:
    """The user-given input paths of the command (its ``inputs`` default): ``AUDIO --checkpoint RUN``."""
    parts = []
    for name in getattr(args, "inputs", ()):
        value = getattr(args, name, None)
        if value is None or value == []:
            continue
        values = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        positional = name in ("inputs", "dataset", "path", "audio")
        parts.append(values if positional else f"--{name.replace('_', '-')} {values}")
    return " ".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
