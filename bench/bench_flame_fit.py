"""``flame-fit`` throughput: clips fitted one by one against the same clips in one batched fit.

Makes ``--clips`` clips of ``--seconds`` seconds at 25 fps whose landmarks come from smooth random
FLAME parameters of the synthetic head (the landmark-restricted model costs the same per landmark
with the real FLAME), then fits them through the backend (:class:`FlameFitBackend`) twice: each
clip on its own (``reconstruct_clip``, what a CPU worker did before batching), and all of them in
one call (``reconstruct_batch``: one optimisation over every clip's frames). Prints clips per second
of each and their ratio, after one untimed warm-up fit, with ``--threads`` CPU threads.

    python bench/bench_flame_fit.py [--device cpu|cuda] [--clips 8] [--seconds 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pseudo3d.config import BuildConfig
from pseudo3d.reconstruction.camera import crop_to_image, project_to_crop
from pseudo3d.reconstruction.flame import FlameModel
from pseudo3d.reconstruction.flame_fit import FlameFitBackend
from pseudo3d.schemas.records import Clip, Source
from pseudo3d.testing.flame_assets import write_synthetic_flame_model, write_synthetic_mediapipe_embedding

FPS = 25.0


def synthetic_clip(model: FlameModel, rng: np.random.Generator, frames: int, index: int) -> Clip:
    """A clip whose landmarks are FLAME's for smooth random parameters, seen through a 300-pixel crop."""
    t = np.arange(frames)[:, None] / FPS
    wave = lambda count, amplitude: amplitude * np.sin(2 * np.pi * rng.uniform(0.2, 2, count) * t  # noqa: E731
                                                       + rng.uniform(0, 6.3, count)).astype(np.float32)
    expression = np.zeros((frames, 50), np.float32)
    expression[:, :6] = wave(6, 1.5)
    jaw = np.zeros((frames, 3), np.float32)
    jaw[:, 0] = 0.12 + wave(1, 0.1)[:, 0]
    with torch.no_grad():
        out = model(shape=torch.zeros(frames, 100), expression=torch.from_numpy(expression),
                    jaw_pose=torch.from_numpy(jaw), global_pose=torch.from_numpy(wave(3, 0.15)))
        camera = torch.tensor([[9.0, 0.0, 0.0]]).expand(frames, 3)
        factor = 223 / 300
        transforms = torch.tensor([[[factor, 0, -170 * factor], [0, factor, -90 * factor]]] * frames)
        image_xy = crop_to_image(project_to_crop(out.vertices, camera), transforms)
        depth = -out.vertices[..., 2] * 9 * 112 / factor
    landmarks = np.concatenate([image_xy.numpy(), depth.numpy()[..., None] + 500], axis=2)
    landmarks[..., :2] += rng.normal(0, 0.5, landmarks[..., :2].shape)
    return Clip(source=Source("/bench.mp4", "bench.mp4", "bench-0"), clip_index=index, start_frame=0, fps=FPS,
                image_size=(640, 480), landmarks=landmarks.astype(np.float32), confidence=np.ones(frames, np.float32),
                interpolated=np.zeros(frames, bool), crop_transforms=transforms.numpy().astype(np.float32),
                audio=np.zeros(frames * 640, np.float32), sample_rate=16000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="pseudo3d-bench-") as scratch:
        folder = Path(scratch)
        model_path = write_synthetic_flame_model(folder / "generic_model.pkl")
        embedding = write_synthetic_mediapipe_embedding(folder / "mediapipe_landmark_embedding.npz")
        model = FlameModel.from_file(model_path, landmark_embedding=embedding)
        backend = FlameFitBackend(BuildConfig().with_overrides(backend="flame-fit", reconstruct={
            "flame_model": str(model_path), "landmark_embedding": str(embedding), "device": args.device}))
        rng = np.random.default_rng(0)
        clips = [synthetic_clip(model, rng, int(args.seconds * FPS), index) for index in range(args.clips)]
        backend.reconstruct_clip(clips[0])  # warm-up
        sync = torch.cuda.synchronize if backend.device.type == "cuda" else (lambda: None)
        start = time.perf_counter()
        for clip in clips:
            backend.reconstruct_clip(clip)
        sync()
        alone = time.perf_counter() - start
        start = time.perf_counter()
        backend.reconstruct_batch(clips)
        sync()
        together = time.perf_counter() - start
    print(f"device {backend.device}, {args.threads} thread(s), {args.clips} clips of {args.seconds:g} s "
          f"({int(args.seconds * FPS)} frames)")
    print(f"one by one: {args.clips / alone:.2f} clips/s ({alone:.1f} s); batched: {args.clips / together:.2f} clips/s "
          f"({together:.1f} s); batched / one by one = {alone / together:.2f}")


if __name__ == "__main__":
    main()
