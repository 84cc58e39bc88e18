"""Smoothing trade-off on the synthetic corpus: jitter removed against lip motion kept.

First, per clip as built (``mesh_raw`` and ``mesh_smooth``): mouth r raw and smoothed, and the
jitter of both. Then, for several Savitzky–Golay settings (window in frames at the output rate,
polynomial order), re-smooths the raw head-pose-free mesh of every clip and prints:
  * jitter ratio: RMS second difference of the smoothed mesh / of the raw mesh (corpus-wide and
    worst clip);
  * mouth r: Pearson correlation of the smoothed inner-lip distance (landmarks 13-14) with the
    ground-truth mouth opening (worst clip and mean).

    python bench/smoothing_tradeoff.py DATASET CORPUS
    (e.g. after `pseudo3d demo`: pseudo3d-demo/dataset pseudo3d-demo/corpus)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.signal import savgol_filter

from pseudo3d.qa.metrics import jitter
from pseudo3d.schemas.shard_reader import iter_samples

SETTINGS = [(5, 2), (7, 2), (9, 2), (9, 4), (11, 4), (13, 5), (17, 7)]


def clips(dataset: Path, corpus: Path):
    """(key, raw mesh (T, 478, 3), smoothed mesh as built, ground-truth mouth opening (T,)) per clip."""
    for shard in sorted((dataset / "shards").glob("*.tar")):
        for sample in iter_samples(shard):
            meta = sample["meta.json"]
            truth = json.loads((corpus / f"{Path(meta['source']).stem}.truth.json").read_text())
            times = meta["start_s"] + np.arange(meta["n_frames"]) / meta["fps"]
            index = np.minimum(np.round(times * truth["fps"]).astype(int), truth["n_frames"] - 1)
            yield (sample["__key__"], sample["mesh_raw.npy"].astype(np.float64),
                   sample["mesh_smooth.npy"].astype(np.float64), np.asarray(truth["mouth_open"])[index])


def mouth_r(mesh: np.ndarray, truth: np.ndarray) -> float:
    return float(np.corrcoef(np.linalg.norm(mesh[:, 13] - mesh[:, 14], axis=1), truth)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("corpus", type=Path)
    args = parser.parse_args()
    data = list(clips(args.dataset, args.corpus))
    print("clip (as built)                      frames | mouth r raw  smooth | jitter raw  smooth  ratio")
    for key, raw, smooth, truth in data:
        print(f"{key:<36} {len(raw):6d} | {mouth_r(raw, truth):11.3f} {mouth_r(smooth, truth):7.3f} | "
              f"{jitter(raw):10.4f} {jitter(smooth):7.4f} {jitter(smooth) / jitter(raw):6.3f}")
    print("\nwindow  order | jitter ratio corpus  worst | mouth r worst  mean")
    for window, order in SETTINGS:
        raw_energy = smooth_energy = 0.0
        ratios, correlations = [], []
        for _, mesh, _, truth in data:
            smooth = savgol_filter(mesh, window, order, axis=0, mode="interp")
            j_raw, j_smooth = jitter(mesh), jitter(smooth)
            raw_energy += j_raw ** 2 * (len(mesh) - 2)
            smooth_energy += j_smooth ** 2 * (len(mesh) - 2)
            ratios.append(j_smooth / j_raw)
            correlations.append(mouth_r(smooth, truth))
        print(f"{window:6d} {order:6d} | {np.sqrt(smooth_energy / raw_energy):19.3f} {max(ratios):6.3f} | "
              f"{min(correlations):13.3f} {np.mean(correlations):5.3f}")


if __name__ == "__main__":
    main()
