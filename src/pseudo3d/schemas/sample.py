"""Encoding and decoding of one WebDataset sample (one clip).

A sample's members are ``KEY.audio.flac`` (mono 16-bit FLAC), ``KEY.meta.json``, one
``KEY.NAME.npy`` per array and ``KEY.thumbnail.jpg`` (the QA report's picture of the face, when one
was cut). Nothing is pickled: arrays are saved and loaded with ``allow_pickle=False`` and member
kinds outside :data:`MEMBER_DECODERS` are refused.
"""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Mapping

import numpy as np
import soundfile

AUDIO_MEMBER = "audio.flac"
META_MEMBER = "meta.json"
THUMBNAIL_MEMBER = "thumbnail.jpg"


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio in [-1, 1] → 16-bit FLAC bytes."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    audio, sample_rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return audio, int(sample_rate)


def to_jsonable(value: Any) -> Any:
    """Numpy scalars and arrays → plain Python, recursively, so ``json.dumps`` never fails."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def encode_json(value: Mapping[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, compact separators, trailing newline."""
    text = json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return (text + "\n").encode()


def encode_sample(arrays: Mapping[str, np.ndarray], audio: np.ndarray, sample_rate: int,
                  meta: Mapping[str, Any], thumbnail: bytes | None = None) -> dict[str, bytes]:
    """Member suffix → bytes for one clip, in sorted member order; ``thumbnail``: JPEG bytes."""
    members = {AUDIO_MEMBER: encode_flac(audio, sample_rate), META_MEMBER: encode_json(meta)}
    if thumbnail is not None:
        members[THUMBNAIL_MEMBER] = bytes(thumbnail)
    for name, array in arrays.items():
        if "." in name or "/" in name:
            raise ValueError(f"array name {name!r} may not contain '.' or '/'")
        members[f"{name}.npy"] = encode_npy(array)
    return dict(sorted(members.items()))


MEMBER_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "npy": decode_npy,
    "json": lambda data: json.loads(data),
    "flac": decode_flac,
    "jpg": bytes,
}
"""Member kinds a pseudo3d reader will decode (``.jpg`` stays JPEG bytes, for the caller to decode);
anything else (``.pkl``, ``.pth``, ...) is refused."""


def decode_sample(members: Mapping[str, bytes]) -> dict[str, Any]:
    """Suffix → decoded value. ``audio.flac`` decodes to ``(audio, sample_rate)``."""
    decoded = {}
    for suffix, data in members.items():
        kind = suffix.rsplit(".", 1)[-1]
        decoder = MEMBER_DECODERS.get(kind)
        if decoder is None:
            raise ValueError(f"refusing member {suffix!r}: pseudo3d samples hold only "
                             f"{', '.join(sorted(MEMBER_DECODERS))} members")
        decoded[suffix] = decoder(data)
    return decoded
