"""Committing units to a local directory and to an S3-compatible server, measured in one run.

Writes ``--shards`` units of one source and one shard of ``--samples`` synthetic samples each
(random bytes, so nothing compresses) with the build's unit writer, once into a local directory
and once into a bucket, and prints MB/s of committed shards and the bucket's figure as a ratio of
the local one. Then commits ``--resume-shards`` tiny units to each and times what a resume with
the same inputs does before it builds anything (:func:`pseudo3d.pipelines.output_dir.plan_build`:
one listing of ``_commits/`` and one marker read), against reading every marker (what the card
is made from at the end of a build, and what a resume read before units). Last it writes that
dataset's card, reads its manifest through the card (one part per unit), runs ``pseudo3d compact``
on it and reads the manifest again (one part).

The server is moto's S3 service on 127.0.0.1 (``tests/storage/s3_server.py``, in memory, one
request at a time) unless ``--endpoint`` names another (a MinIO or SeaweedFS one, say), with
credentials from the standard ``AWS_*`` variables. A loopback server on the same two cores is not
a network store: the figures show what the protocol costs here (requests, multipart parts,
copies), not what S3 would give.

    python bench/bench_storage.py [--shards 40] [--samples 20] [--sample-kib 256] [--resume-shards 1000]
                                  [--endpoint URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.compact import compact_dataset
from pseudo3d.pipelines.dataset_files import write_dataset_files
from pseudo3d.pipelines.output_dir import plan_build
from pseudo3d.pipelines.plan import plan_units
from pseudo3d.pipelines.shard_writer import write_unit
from pseudo3d.schemas.commits import committed_shards, read_commits
from pseudo3d.schemas.index import read_card, read_table
from pseudo3d.schemas.records import EncodedSample, Source, SourceOutcome
from pseudo3d.storage import Storage

ROOT = Path(__file__).resolve().parents[1]


def outcomes(n_sources: int, samples: int, sample_bytes: int, seed: int = 0) -> list[SourceOutcome]:
    """``n_sources`` sources of ``samples`` samples each of ``sample_bytes`` random bytes."""
    rng = np.random.default_rng(seed)
    made = []
    for index in range(n_sources):
        source = Source(uri=f"/corpus/{index}.mp4", identity=f"corpus/{index}.mp4", source_id=f"s{index:06d}")
        clips = []
        for clip in range(samples):
            key = f"{source.source_id}_{clip:03d}"
            members = {"x.npy": rng.bytes(sample_bytes), "meta.json": b'{"fps": 25.0}'}
            clips.append(EncodedSample(key, members, {"key": key, "source_id": source.source_id, "n_frames": 25,
                                                      "duration_s": 1.0, "fps": 25.0, "clip_index": clip}))
        made.append(SourceOutcome(source, "ok", samples=clips,  # what a build records, so a resume reads one marker
                                  numerics={"reconstruct": {"device": "cpu", "precision": "fp32"}}))
    return made


def config(samples: int) -> BuildConfig:
    """One source per unit, every sample of a source in one shard."""
    return BuildConfig().with_overrides(shards={"max_sources": 1, "max_samples": max(1, samples)})


def commit(storage: Storage, made: list[SourceOutcome], samples: int) -> float:
    """Seconds to write and commit every unit (one source, one shard each)."""
    settings = config(samples)
    units = plan_units([outcome.source for outcome in made], 1, settings.fingerprint())
    start = time.perf_counter()
    for unit, outcome in zip(units, made):
        write_unit(storage, unit, [outcome], settings.shards, settings.fingerprint())
    return time.perf_counter() - start


def resume_cost(storage: Storage, made: list[SourceOutcome], repeats: int = 3) -> tuple[float, float]:
    """(seconds to plan a resume with the same inputs, seconds to read every marker), best of ``repeats``."""
    sources = [outcome.source for outcome in made]
    planning = min(_timed(lambda: plan_build(storage, sources, config(1))) for _ in range(repeats))
    reading = min(_timed(lambda: read_commits(storage)) for _ in range(repeats))
    return planning, reading


def compaction_cost(storage: Storage) -> tuple[float, float, float]:
    """(seconds to read the manifest through the card, to compact, to read it again)."""
    write_dataset_files(storage, config(1))
    before = _timed(lambda: read_table(storage, read_card(storage), "manifest"))
    compacting = _timed(lambda: compact_dataset(storage))
    return before, compacting, _timed(lambda: read_table(storage, read_card(storage), "manifest"))


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _server() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "storage" / "s3_server.py")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--samples", type=int, default=20, help="samples per shard")
    parser.add_argument("--sample-kib", type=int, default=256)
    parser.add_argument("--resume-shards", type=int, default=1000, help="tiny shards the resume is timed over")
    parser.add_argument("--endpoint", help="an S3-compatible server (default: start moto's on 127.0.0.1)")
    args = parser.parse_args()

    server = None
    if args.endpoint is None:
        server, endpoint = _server()
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    else:
        endpoint = args.endpoint
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        made = outcomes(args.shards, args.samples, args.sample_kib * 1024)
        tiny = outcomes(args.resume_shards, 1, 1024)
        with tempfile.TemporaryDirectory() as folder:
            figures = {}
            for name, root in (("local", str(Path(folder) / "ds")), ("s3", f"s3://{bucket}/ds")):
                storage = Storage(root)
                seconds = commit(storage, made, args.samples)
                size = sum(shard.n_bytes for shard in committed_shards(read_commits(storage)))
                resumed = Storage(f"{root}-resume")
                commit(resumed, tiny, 1)
                assert plan_build(resumed, [outcome.source for outcome in tiny], config(1)).units == []
                figures[name] = (size / seconds / 1e6, *resume_cost(resumed, tiny), *compaction_cost(resumed))
        print(f"commit: {args.shards} units of {args.samples} × {args.sample_kib} KiB samples; "
              f"resume: {args.resume_shards} committed units; S3 server {endpoint}")
        print(f"{'':8}{'commit MB/s':>12}{'plan a resume s':>17}{'read every marker s':>22}")
        for name, (rate, planning, reading, *_) in figures.items():
            print(f"{name:8}{rate:12.1f}{planning:17.3f}{reading:22.3f}")
        print(f"{'':8}{'read manifest s':>16}{'compact s':>11}{'read it compacted s':>21}")
        for name, (*_, before, compacting, after) in figures.items():
            print(f"{name:8}{before:16.3f}{compacting:11.2f}{after:21.3f}")
        print(f"s3/local: commit throughput {figures['s3'][0] / figures['local'][0]:.2f}; on s3, planning a "
              f"resume costs {figures['s3'][1] / figures['s3'][2]:.2f} of reading every marker")
    finally:
        if server is not None:
            server.kill()


if __name__ == "__main__":
    main()
