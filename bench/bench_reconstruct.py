"""Reconstruct-stage throughput of the ``deca`` or ``spectre`` backend against its ceiling, in one run.

For each batch size prints crops per second of:
  * plain: the bare backbone forward on a float batch already on the device, at the same
    precision (the ceiling: nothing the stage adds is counted): ResNet-50 for ``deca``, ResNet-50
    then MobileNetV2's features for ``spectre``;
  * stage: ``reconstruct_batch`` of the backend on clips of uint8 crops in host memory, as the
    runner hands them over: pinned-memory transfer, float conversion, encoder(s), code split
    (``spectre``: each clip's temporal head), FLAME with the MediaPipe landmark embedding, DECA's
    camera projection, the reprojection error, and the per-clip arrays back in host memory;
and the ratio stage / plain. CUDA runs ``--precision`` (fp32 or bf16 autocast) with channels_last;
CPU runs float32.

Assets are synthetic (random DECA/SPECTRE weights; the 478-vertex synthetic FLAME head): speed does not
depend on weight values, and FLAME's share is small next to ResNet-50 even at its real 5023
vertices.

    python bench/bench_reconstruct.py [--backend deca|spectre] [--device auto|cpu|cuda] [--precision fp32|bf16] [--batch-sizes ...] [--clip-frames 64]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_encoder import images_per_second

from pseudo3d.config import BuildConfig
from pseudo3d.reconstruction import make_backend
from pseudo3d.reconstruction.deca_backend import DecaBackend
from pseudo3d.reconstruction.device import PRECISIONS, inference_context, inference_precision, resolve_device
from pseudo3d.schemas.records import Clip, Source
from pseudo3d.testing.deca_assets import write_synthetic_deca_checkpoint
from pseudo3d.testing.spectre_assets import write_synthetic_spectre_checkpoint
from pseudo3d.testing.flame_assets import write_synthetic_flame_model, write_synthetic_mediapipe_embedding

DEFAULT_BATCH_SIZES = {"cpu": (8, 32), "cuda": (64, 128, 256, 512)}


def make_clips(total_frames: int, clip_frames: int, rng: np.random.Generator) -> list[Clip]:
    """Clips of random crops adding up to ``total_frames`` frames (a batch spans clips, as in a build)."""
    clips = []
    for index, start in enumerate(range(0, total_frames, clip_frames)):
        n = min(clip_frames, total_frames - start)
        landmarks = rng.uniform(100, 300, (n, 478, 3)).astype(np.float32)
        transforms = np.tile(np.array([[0.8, 0.0, -60.0], [0.0, 0.8, -40.0]], np.float32), (n, 1, 1))
        clips.append(Clip(source=Source("/bench.mp4", "bench.mp4", "bench-0"), clip_index=index, start_frame=start,
                          fps=25.0, image_size=(640, 480), landmarks=landmarks, confidence=np.ones(n, np.float32),
                          interpolated=np.zeros(n, bool), crop_transforms=transforms,
                          audio=np.zeros(n * 640, np.float32), sample_rate=16000,
                          crops=rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("deca", "spectre"), default="deca")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="on CUDA (the CPU runs fp32)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default: 8 32 (CPU), 64 128 256 512 (CUDA)")
    parser.add_argument("--clip-frames", type=int, default=64, help="frames per clip handed to the stage")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    args = parser.parse_args()

    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="pseudo3d-bench-") as scratch:
        scratch = Path(scratch)
        reconstruct = {
            "flame_model": str(write_synthetic_flame_model(scratch / "generic_model.pkl")),
            "landmark_embedding": str(write_synthetic_mediapipe_embedding(scratch / "mediapipe_landmark_embedding.npz")),
            **({"deca_checkpoint": str(write_synthetic_deca_checkpoint(scratch / "deca_model.tar"))}
               if args.backend == "deca" else
               {"spectre_checkpoint": str(write_synthetic_spectre_checkpoint(scratch / "spectre_model.tar"))}),
            "device": str(device),
            "precision": args.precision,
        }
        print(f"backend {args.backend}, device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                    f" ({torch.get_num_threads()} threads)") + f"; {inference_precision(device, args.precision)}")
        print(f"{'batch':>6} {'plain crops/s':>14} {'stage crops/s':>14} {'stage/plain':>12}")
        for batch_size in args.batch_sizes or DEFAULT_BATCH_SIZES[device.type]:
            config = BuildConfig().with_overrides(backend=args.backend, reconstruct={**reconstruct, "batch_size": batch_size})
            backend = make_backend(config)
            assert isinstance(backend, DecaBackend)  # and SpectreBackend, its subclass
            clips = make_clips(batch_size, args.clip_frames, rng)
            images = torch.rand(batch_size, 3, 224, 224, device=device)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)

            def plain() -> None:
                with inference_context(device, args.precision):
                    if args.backend == "deca":
                        backend.encoder.encoder(images)
                    else:
                        backend.encoder.E_flame.encoder(images)
                        backend.encoder.E_expression.encoder.features(images)

            def stage() -> None:
                backend.reconstruct_batch(clips)

            plain_rate = images_per_second(plain, batch_size, device, args.min_seconds, 2, 1)
            stage_rate = images_per_second(stage, batch_size, device, args.min_seconds, 2, 1)
            print(f"{batch_size:>6} {plain_rate:>14.1f} {stage_rate:>14.1f} {stage_rate / plain_rate:>12.2f}")


if __name__ == "__main__":
    main()
