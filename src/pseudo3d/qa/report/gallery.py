"""The gallery: a few kept clips, each as its source frame with the tracked landmarks, the
reconstructed mesh of that frame, and mouth opening against the audio envelope over the clip.

Clips are chosen deterministically and spread over sources: in input order, the first clip of
every source, then the second clip of every source, and so on. The frame shown is the middle one
of the clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pseudo3d.qa.report import fmt
from pseudo3d.qa.report.data import Dataset
from pseudo3d.qa.report.figures import mouth_audio_plot
from pseudo3d.qa.report.frames import FrameUnavailable, decode_source_frame, draw_points
from pseudo3d.qa.report.images import fit_within, png_data_uri
from pseudo3d.qa.report.meshes import FLAME_MEMBERS, MESH_MEMBERS, FrameMesh, MeshUnavailable, frame_mesh
from pseudo3d.qa.report.render import render_mesh
from pseudo3d.qa.report.samples import read_members

MEMBERS = ("meta.json", "mouth_open.npy", "audio_envelope.npy", "landmarks_2d_raw.npy", *MESH_MEMBERS, *FLAME_MEMBERS)
"""Sample members the gallery reads (those a backend did not write are simply absent)."""
IMAGE_SIZE = 300
"""Pixels: the longer side of the frame crop and the side of the mesh render."""
FACE_CONTEXT = 1.9
"""The frame crop spans this many times the face's extent."""


@dataclass(frozen=True)
class GalleryItem:
    key: str
    source_name: str
    clip_index: int
    start_s: float
    end_s: float
    frame_index: int
    """Clip frame shown (0-based), at ``start_s + frame_index / fps`` in the source."""
    frame_time_s: float
    frame_uri: str | None
    """PNG data URI of the source frame with points drawn, or None (``frame_note`` says why)."""
    frame_note: str
    mesh_uri: str | None
    mesh_note: str
    plot_uri: str | None
    av_offset_frames: float
    av_offset_s: float
    av_sync_strength: float
    av_sync_p_value: float
    confidence_mean: float


def choose_clips(dataset: Dataset, count: int) -> list[int]:
    """Manifest row indices of up to ``count`` clips, round-robin over sources in input order."""
    order = {row["source_id"]: index for index, row in enumerate(dataset.sources)}
    by_source: dict[str, list[int]] = {}
    for row, source_id in enumerate(dataset.manifest.get("source_id", [])):
        by_source.setdefault(source_id, []).append(row)
    queues = [sorted(rows, key=lambda r: dataset.manifest["clip_index"][r])
              for _, rows in sorted(by_source.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < count and any(depth < len(queue) for queue in queues):
        chosen.extend(queue[depth] for queue in queues if depth < len(queue))
        depth += 1
    return chosen[:max(0, count)]


def build_gallery(dataset: Dataset, count: int) -> list[GalleryItem]:
    """Decode, draw and render the chosen clips (shards are read once each, selectively)."""
    rows = choose_clips(dataset, count)
    column = dataset.manifest
    keys_by_shard: dict[str, list[str]] = {}
    for row in rows:
        keys_by_shard.setdefault(column["shard"][row], []).append(column["key"][row])
    samples: dict[str, dict] = {}
    for shard, keys in keys_by_shard.items():
        path = dataset.path / "shards" / f"{shard}.tar"
        if path.is_file():
            samples.update(read_members(path, keys, MEMBERS))
    flame_model = dataset.card.get("config", {}).get("reconstruct", {}).get("flame_model")
    return [_item(dataset, row, samples.get(column["key"][row]), flame_model) for row in rows]


def _value(dataset: Dataset, name: str, row: int) -> float:
    values = dataset.manifest.get(name)
    value = None if values is None else values[row]
    return float("nan") if value is None else float(value)


def _item(dataset: Dataset, row: int, sample: dict | None, flame_model: str | None) -> GalleryItem:
    column = dataset.manifest
    key, fps = column["key"][row], float(column["fps"][row])
    n_frames, start_s = int(column["n_frames"][row]), float(column["start_s"][row])
    frame = n_frames // 2
    frame_time = start_s + frame / fps
    common = dict(key=key, source_name=fmt.file_name(column["source"][row]), clip_index=int(column["clip_index"][row]),
                  start_s=start_s, end_s=float(column["end_s"][row]), frame_index=frame, frame_time_s=frame_time,
                  av_offset_frames=_value(dataset, "av_offset_frames", row),
                  av_offset_s=_value(dataset, "av_offset_s", row),
                  av_sync_strength=_value(dataset, "av_sync_strength", row),
                  av_sync_p_value=_value(dataset, "av_sync_p_value", row),
                  confidence_mean=_value(dataset, "confidence_mean", row))
    if sample is None:
        note = f"sample {key} was not found in shards/{column['shard'][row]}.tar"
        return GalleryItem(**common, frame_uri=None, frame_note=note, mesh_uri=None, mesh_note=note, plot_uri=None)

    mesh: FrameMesh | None = None
    try:
        mesh = frame_mesh(sample, frame, dataset.backend, flame_model)
        mesh_uri, mesh_note = png_data_uri(render_mesh(mesh.vertices, mesh.faces, IMAGE_SIZE, mesh.material, mesh.view)), mesh.caption
    except MeshUnavailable as exc:
        mesh_uri, mesh_note = None, str(exc)

    if "landmarks_2d_raw.npy" in sample:
        points, what = sample["landmarks_2d_raw.npy"][frame], "tracked landmarks (landmarks_2d_raw)"
    elif mesh is not None and mesh.image_points is not None:
        points, what = mesh.image_points, "FLAME vertices projected with the fitted camera"
    else:
        points, what = None, "no landmarks in this sample"
    try:
        image = decode_source_frame(str(column["source"][row]), frame_time)
        frame_uri = png_data_uri(_face_view(image, points))
        frame_note = f"source frame at {frame_time:.2f} s with {what}"
    except FrameUnavailable as exc:
        frame_uri, frame_note = None, f"source video not available: {exc}"

    envelope = sample.get("audio_envelope.npy", np.zeros(0))
    plot_uri = mouth_audio_plot(sample["mouth_open.npy"], envelope, fps, frame) if "mouth_open.npy" in sample else None
    return GalleryItem(**common, frame_uri=frame_uri, frame_note=frame_note, mesh_uri=mesh_uri, mesh_note=mesh_note,
                       plot_uri=plot_uri)


def _face_view(image: np.ndarray, points: np.ndarray | None) -> np.ndarray:
    """The frame cropped around the face (whole frame without points), points drawn, at most
    :data:`IMAGE_SIZE` pixels on its longer side."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = 0, 0, width, height
    finite = None if points is None else np.asarray(points, np.float64)[:, :2]
    if finite is not None:
        finite = finite[np.isfinite(finite).all(axis=1)]
    if finite is not None and len(finite):
        centre = 0.5 * (finite.min(axis=0) + finite.max(axis=0))
        half = 0.5 * FACE_CONTEXT * float((finite.max(axis=0) - finite.min(axis=0)).max())
        half = max(half, 16.0)
        x0, y0 = max(0, math.floor(centre[0] - half)), max(0, math.floor(centre[1] - half))
        x1, y1 = min(width, math.ceil(centre[0] + half)), min(height, math.ceil(centre[1] + half))
        if x1 - x0 < 8 or y1 - y0 < 8:  # the face is off the picture: show it all
            x0, y0, x1, y1 = 0, 0, width, height
    crop = fit_within(np.ascontiguousarray(image[y0:y1, x0:x1]), IMAGE_SIZE, upscale=True)
    if finite is None or not len(finite):
        return crop
    scale = crop.shape[1] / (x1 - x0)
    return draw_points(crop, (finite - [x0, y0]), scale=scale, radius=0.8 if len(finite) > 200 else 1.2)
