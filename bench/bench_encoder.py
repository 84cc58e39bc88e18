"""DECA encoder throughput, measured in one run: the bare network versus the path a backend runs.

Prints images per second, per batch size, of:
  * plain: the ResNet-50 backbone alone on a float batch already on the device;
  * path: what a ``deca`` backend does per batch: uint8 crops (N, 224, 224, 3) on the host →
    device (pinned memory, non-blocking, on CUDA) → float [0, 1] → full encoder (backbone +
    regressor + code split) → codes back on the host as numpy;
and the ratio path / plain (1.0 = the plumbing and the regressor cost nothing).

Both run under the same precision (:func:`pseudo3d.reconstruction.device.inference_context`,
``--precision``: fp32 or bfloat16 autocast on CUDA, channels_last; float32 on CPU). Weights come from a synthetic
checkpoint (speed does not depend on their values).

    python bench/bench_encoder.py [--device auto|cpu|cuda] [--precision fp32|bf16] [--batch-sizes 1 8 32 64] [--min-seconds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pseudo3d.reconstruction.deca import IMAGE_SIZE, DecaEncoder
from pseudo3d.reconstruction.device import (PRECISIONS, inference_context, inference_precision, resolve_device,
                                            uint8_crops_to_device)
from pseudo3d.testing.deca_assets import write_synthetic_deca_checkpoint

DEFAULT_BATCH_SIZES = {"cpu": (1, 8, 32, 64), "cuda": (64, 128, 256, 512)}


def images_per_second(run: Callable[[], object], batch_size: int, device: torch.device,
                      min_seconds: float, min_iters: int, warmup: int) -> float:
    """Batches of ``batch_size`` per second × batch size, after ``warmup`` untimed calls; runs at
    least ``min_iters`` calls and at least ``min_seconds``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        run()
    sync()
    calls, start = 0, time.perf_counter()
    while calls < min_iters or time.perf_counter() - start < min_seconds:
        run()
        calls += 1
    sync()
    return calls * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="on CUDA (the CPU runs fp32)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default: 1 8 32 64 (CPU), 64 128 256 512 (CUDA)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timed seconds per measurement, at least")
    parser.add_argument("--min-iters", type=int, default=2, help="timed batches per measurement, at least")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches before each measurement")
    args = parser.parse_args()

    device = resolve_device(args.device)
    batch_sizes = args.batch_sizes or DEFAULT_BATCH_SIZES[device.type]
    with tempfile.TemporaryDirectory() as scratch:
        encoder = DecaEncoder.from_checkpoint(write_synthetic_deca_checkpoint(Path(scratch) / "deca.tar"), device)
    precision = inference_precision(device, args.precision)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"DECA encoder on {device} ({name}); {precision}; torch {torch.__version__}")
    print(f"{'batch':>6} {'plain img/s':>12} {'path img/s':>11} {'path/plain':>11}")

    rng = np.random.default_rng(0)
    for batch_size in batch_sizes:
        crops = rng.integers(0, 256, (batch_size, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        on_device = uint8_crops_to_device(crops, device)

        def plain() -> None:
            with inference_context(device, precision):
                encoder.encoder(on_device)

        def path() -> dict[str, np.ndarray]:
            with inference_context(device, precision):
                codes = encoder(uint8_crops_to_device(crops, device))
            return {code: value.cpu().numpy() for code, value in codes.items()}

        timing = dict(device=device, min_seconds=args.min_seconds, min_iters=args.min_iters, warmup=args.warmup)
        plain_rate = images_per_second(plain, batch_size, **timing)
        path_rate = images_per_second(path, batch_size, **timing)
        print(f"{batch_size:>6} {plain_rate:>12.1f} {path_rate:>11.1f} {path_rate / plain_rate:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
