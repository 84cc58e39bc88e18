"""The gallery: a few kept clips, each as its face (the sample's ``thumbnail.jpg``, cut by the
worker that decoded the source) with the tracked landmarks, the reconstructed mesh of that frame,
and mouth opening against the audio envelope over the clip.

Clips are chosen deterministically and spread over sources: in input order, the first clip of
every source, then the second clip of every source, and so on. The frame shown is the
thumbnail's, the candidate nearest the clip's middle. The report never opens the source videos:
they are untrusted input, and a dataset read elsewhere does not have them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pseudo3d.qa.report import fmt
from pseudo3d.qa.report.data import Dataset
from pseudo3d.qa.report.figures import mouth_audio_plot
from pseudo3d.qa.report.frames import draw_points
from pseudo3d.qa.report.images import decode_jpeg, fit_within, png_data_uri
from pseudo3d.qa.report.meshes import FLAME_MEMBERS, MESH_MEMBERS, FrameMesh, MeshUnavailable, frame_mesh
from pseudo3d.qa.report.render import render_mesh
from pseudo3d.qa.report.samples import read_members
from pseudo3d.schemas.layout import SHARD_DIR
from pseudo3d.schemas.shard_reader import UnsafeShardError

log = logging.getLogger(__name__)

MEMBERS = ("meta.json", "thumbnail.jpg", "mouth_open.npy", "audio_envelope.npy", "landmarks_2d_raw.npy",
           *MESH_MEMBERS, *FLAME_MEMBERS)
"""Sample members the gallery reads (those a backend did not write are simply absent)."""
IMAGE_SIZE = 300
"""Pixels: the longer side of the face picture and the side of the mesh render."""


@dataclass(frozen=True)
class GalleryItem:
    key: str
    source_name: str
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
    """Manifest row indices of up to ``count`` clips, round-robin over sources in input order:
    a clip of each source, then a second of each, and so on. A source that gets ``k`` of its ``n``
    clips gets them spread evenly over its clips in time (the first, the last, and evenly between),
    so a long video is seen through, not only in its first minutes. Sources missing from the source
    rows come last, by id. Columnar: sorts of the manifest's rows, no Python object per clip."""
    if count <= 0 or not dataset.n_clips or not dataset.has_column("source_id"):
        return []
    # a null source id is a source of its own, unlisted
    encoded = pc.dictionary_encode(dataset.manifest["source_id"].cast(pa.string()), null_encoding="encode").combine_chunks()
    ids, codes = encoded.dictionary, encoded.indices.to_numpy()
    listed = dataset.sources["source_id"].cast(pa.string()).combine_chunks()
    rank = pc.fill_null(pc.index_in(ids, value_set=listed), len(listed))
    order = pc.sort_indices(pa.table({"rank": rank, "id": ids}), sort_keys=[("rank", "ascending"), ("id", "ascending")])
    place = np.empty(len(ids), np.int64)  # each source's place: input order, then id
    place[order.to_numpy()] = np.arange(len(ids))
    source = place[codes]
    rows = np.lexsort((dataset.column("clip_index"), source))  # by source, then clip index
    firsts = np.flatnonzero(np.r_[True, source[rows][1:] != source[rows][:-1]])
    sizes = np.diff(np.r_[firsts, len(rows)])  # clips per source
    depth = np.arange(len(rows)) - np.repeat(firsts, sizes)
    picked = np.lexsort((source[rows], depth))[:count]  # a pick of every source, then a second...
    group = np.repeat(np.arange(len(firsts)), sizes)[picked]
    picks = np.bincount(group, minlength=len(firsts))[group]  # k, per pick
    step = (sizes[group] - 1) / np.maximum(picks - 1, 1)  # k of n clips: positions round(d (n - 1) / (k - 1))
    position = np.where(picks > 1, np.round(depth[picked] * step), 0).astype(np.int64)
    return [int(row) for row in rows[firsts[group] + position]]


def build_gallery(dataset: Dataset, count: int, flame_model: str | None = None) -> list[GalleryItem]:
    """Draw and render the chosen clips (shards are read once each, selectively); ``flame_model``:
    the FLAME file a FLAME backend's meshes are drawn with (without it they are not drawn)."""
    rows = choose_clips(dataset, count)
    chosen = dataset.manifest.take(pa.array(rows, pa.int64())).to_pylist()
    keys_by_shard: dict[str, list[str]] = {}
    for row in chosen:
        keys_by_shard.setdefault(row["shard"], []).append(row["key"])
    samples: dict[str, dict] = {}
    for shard, keys in keys_by_shard.items():
        relative = f"{SHARD_DIR}/{shard}.tar"
        if dataset.storage.is_file(relative):
            try:
                samples.update(read_members(dataset.storage.url_of(relative), keys, MEMBERS))
            except UnsafeShardError as exc:  # its clips show the "not found" note; the rest of the page stands
                log.warning("the gallery skips %s: %s", relative, exc)
    return [_item(dataset, row, samples.get(row["key"]), flame_model) for row in chosen]


def _value(row: dict, name: str) -> float:
    value = row.get(name)
    return float("nan") if value is None else float(value)


def _item(dataset: Dataset, row: dict, sample: dict | None, flame_model: str | None) -> GalleryItem:
    """The gallery entry of one manifest row (column name → value)."""
    key, fps = row["key"], float(row["fps"])
    n_frames, start_s = int(row["n_frames"]), float(row["start_s"])
    thumbnail = (sample or {}).get("meta.json", {}).get("thumbnail")
    frame = int(thumbnail["frame"]) if thumbnail else n_frames // 2
    frame_time = start_s + frame / fps
    common = dict(key=key, source_name=fmt.file_name(row["source"]),
                  start_s=start_s, end_s=float(row["end_s"]), frame_index=frame, frame_time_s=frame_time,
                  av_offset_frames=_value(row, "av_offset_frames"), av_offset_s=_value(row, "av_offset_s"),
                  av_sync_strength=_value(row, "av_sync_strength"),
                  av_sync_p_value=_value(row, "av_sync_p_value"), confidence_mean=_value(row, "confidence_mean"))
    if sample is None:
        note = f"sample {key} was not found in shards/{row['shard']}.tar"
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
    if thumbnail and "thumbnail.jpg" in sample:
        try:
            frame_uri = png_data_uri(_face_view(decode_jpeg(sample["thumbnail.jpg"]), thumbnail["box"], points))
            frame_note = f"source frame at {frame_time:.2f} s with {what}"
        except ValueError as exc:
            frame_uri, frame_note = None, f"the sample's thumbnail.jpg cannot be read: {exc}"
    else:
        frame_uri, frame_note = None, "the sample has no thumbnail (no face was cut while decoding this clip)"

    envelope = sample.get("audio_envelope.npy", np.zeros(0))
    plot_uri = mouth_audio_plot(sample["mouth_open.npy"], envelope, fps, frame) if "mouth_open.npy" in sample else None
    return GalleryItem(**common, frame_uri=frame_uri, frame_note=frame_note, mesh_uri=mesh_uri, mesh_note=mesh_note,
                       plot_uri=plot_uri)


def _face_view(image: np.ndarray, box: list[float], points: np.ndarray | None) -> np.ndarray:
    """The thumbnail (the source frame's ``box`` (x0, y0, x1, y1)) at :data:`IMAGE_SIZE` pixels on
    its longer side, with ``points`` (source pixels) drawn over it."""
    view = fit_within(image, IMAGE_SIZE, upscale=True)
    x0, y0, x1, _ = (float(value) for value in box)
    if points is None:
        return view
    finite = np.asarray(points, np.float64)[:, :2]
    finite = finite[np.isfinite(finite).all(axis=1)]
    if not len(finite):
        return view
    scale = view.shape[1] / (x1 - x0)
    return draw_points(view, finite - [x0, y0], scale=scale, radius=0.8 if len(finite) > 200 else 1.2)
