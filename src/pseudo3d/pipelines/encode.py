"""Encode stage: a reconstructed clip → the members of its WebDataset sample and its manifest row."""

from __future__ import annotations

from typing import Any

import pseudo3d
from pseudo3d.schemas.records import ClipResult, EncodedSample
from pseudo3d.schemas.sample import encode_sample
from pseudo3d.schemas.version import SCHEMA_VERSION

def encode_clip(result: ClipResult) -> EncodedSample:
    clip = result.clip
    per_clip = set(result.meta.get("per_clip_arrays", ()))
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "pseudo3d_version": pseudo3d.__version__,
        "key": clip.key,
        "source": clip.source.reference,
        "source_id": clip.source.source_id,
        "identity": clip.source.identity,
        "clip_index": clip.clip_index,
        "start_s": clip.start_s,
        "end_s": clip.end_s,
        "fps": clip.fps,
        "n_frames": clip.n_frames,
        "sample_rate": clip.sample_rate,
        "n_audio_samples": int(clip.audio.shape[0]),
        "image_size": list(clip.image_size),
        "source_metadata": dict(clip.source.metadata),
        "thumbnail": (None if clip.thumbnail is None else
                      {"frame": clip.thumbnail.frame, "box": list(clip.thumbnail.box)}),
        "arrays": {name: {"shape": list(array.shape), "dtype": str(array.dtype),
                          "per_frame": name not in per_clip}
                   for name, array in sorted(result.arrays.items())},
        **{key: value for key, value in result.meta.items() if key != "per_clip_arrays"},
    }
    row: dict[str, Any] = {
        "key": clip.key,
        "source_id": clip.source.source_id,
        "source": clip.source.reference,
        "identity": clip.source.identity,
        "clip_index": clip.clip_index,
        "start_s": clip.start_s,
        "end_s": clip.end_s,
        "duration_s": clip.n_frames / clip.fps,
        "n_frames": clip.n_frames,
        "fps": clip.fps,
        "backend": result.meta.get("backend"),
        **result.metrics,
    }
    for name, value in clip.source.metadata.items():
        row[name if name not in row else f"meta_{name}"] = value
    members = encode_sample(result.arrays, clip.audio, clip.sample_rate, meta,
                            None if clip.thumbnail is None else clip.thumbnail.jpeg)
    return EncodedSample(key=clip.key, members=members, row=row)
