"""``pseudo3d animate``: speech in, facial motion out, from a trained run.

AUDIO is an audio file (WAV, FLAC, MP3, AAC, M4A, Ogg/Opus, ... at any sample rate and channel
layout) or any video file with an audio track, read by :func:`pseudo3d.pipelines.audio.load_audio`
(mono, 16 kHz). The output
``.npz`` holds plain arrays (``np.load(..., allow_pickle=False)`` reads it) at the run's frame rate:

* ``fps`` (scalar), ``n_frames``;
* MediaPipe-trained runs: ``mesh`` (T, 478, 3) — the canonical template plus the predicted
  offsets, head frame, ~cm — and ``offsets``;
* VOCASET-trained runs: ``offsets`` (T, V, 3), plus ``vertices`` when a template (.npy, V × 3) is given;
* FLAME-target runs: ``expression`` (T, n), ``jaw_pose`` (T, 3), plus ``vertices`` (T, V, 3) and
  ``faces`` when a FLAME model file is given;
* blendshape runs: ``blendshapes`` (T, 52) in [0, 1] and ``blendshape_names``; optionally a CSV
  in Live Link Face's layout.

An MP4 preview of the animated mesh with the audio is written on request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.audio import load_audio
from pseudo3d.training.data.windows import SAMPLE_RATE


def _load_template(path: str | Path) -> np.ndarray:
    """The (V, 3) template of ``--template``; errors name the file."""
    try:
        template = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise Pseudo3DError(f"--template {path}: not a readable .npy of (V, 3) vertices ({error})") from None
    if not isinstance(template, np.ndarray) or template.ndim != 2 or template.shape[1] != 3:
        raise Pseudo3DError(f"--template {path}: expected a (V, 3) array, got shape {getattr(template, 'shape', '?')}")
    return template


@dataclass
class Animation:
    arrays: dict[str, np.ndarray]
    vertices: np.ndarray | None
    faces: np.ndarray | None


def predict(run: str | Path, audio: np.ndarray, name: str = "the audio") -> tuple[np.ndarray, dict[str, Any]]:
    """(T, D) denormalised prediction at the run's frame rate, and the run's config. ``name``
    (the audio's file) is what an error about the audio calls it."""
    from pseudo3d.training.runs import _load_run

    model, mean, std, run_config = _load_run(Path(run))
    model.eval()
    fps = float(run_config["fps"])
    n_frames = int(len(audio) / SAMPLE_RATE * fps)
    if n_frames < 2:
        raise Pseudo3DError(f"{name} is too short to animate ({len(audio) / SAMPLE_RATE:.2f} s)")
    with torch.no_grad():
        output = model(torch.as_tensor(audio[None], dtype=torch.float32), n_frames=n_frames, fps=fps)
    return (output[0] * std + mean).numpy(), run_config


def animate(audio_path: str | Path, run: str | Path, out: str | Path, *, csv: str | Path | None = None,
            preview: str | Path | None = None, template: str | Path | None = None,
            flame_model: str | Path | None = None) -> Animation:
    from pseudo3d.training.data import TargetSpec

    audio = load_audio(audio_path, SAMPLE_RATE)
    motion, run_config = predict(run, audio, name=str(audio_path))
    target = TargetSpec.from_dict(run_config["target"])
    fps = float(run_config["fps"])
    # fps and n_frames as 0-d arrays, what the .npz holds them as
    arrays: dict[str, np.ndarray] = {"fps": np.array(fps, np.float64), "n_frames": np.array(len(motion), np.int64)}
    vertices = faces = None
    if target.kind == "mesh_offsets":
        if target.n_vertices is None:  # TargetSpec refuses mesh_offsets without it
            raise Pseudo3DError(f"run {run}: its mesh_offsets target has no vertex count")
        offsets = motion.reshape(len(motion), target.n_vertices, 3).astype(np.float32)
        arrays["offsets"] = offsets
        base = None
        if template is not None:
            base = _load_template(template)
            if base.shape[0] != target.n_vertices:
                raise Pseudo3DError(f"--template {template}: {base.shape[0]} vertices, but the run predicts "
                                    f"{target.n_vertices}")
        elif target.n_vertices == 478 and run_config.get("stage") == "pretrain":
            from pseudo3d.reconstruction.template import mediapipe_template

            base = mediapipe_template().vertices
        if base is not None:
            vertices = (base[None] + offsets).astype(np.float32)
            arrays["mesh" if template is None else "vertices"] = vertices
        if target.n_vertices == 478:
            from pseudo3d.training.export import mediapipe_faces

            faces = mediapipe_faces()
    elif target.kind == "flame":
        n_expression = target.dim - 3
        arrays["expression"], arrays["jaw_pose"] = motion[:, :n_expression], motion[:, n_expression:]
        if flame_model is not None:
            from pseudo3d.reconstruction.flame import FlameModel

            flame = FlameModel.from_file(flame_model, n_shape=0, n_expression=n_expression)
            with torch.no_grad():
                out_mesh = flame(expression=torch.as_tensor(arrays["expression"]), jaw_pose=torch.as_tensor(arrays["jaw_pose"]))
            vertices, faces = out_mesh.vertices.numpy(), flame.faces.numpy()
            arrays["vertices"], arrays["faces"] = vertices, faces
    elif target.kind == "blendshapes":
        arrays["blendshapes"] = np.clip(motion, 0.0, 1.0).astype(np.float32)
        arrays["blendshape_names"] = np.array(target.names)
    if csv is not None:
        if target.kind != "blendshapes":
            raise Pseudo3DError("--csv needs a run trained on blendshapes (BEAT-layout data)")
        from pseudo3d.training.export import ARKIT_52, write_live_link_csv

        # a target without names is in ARKit's order (TargetSpec.blendshapes)
        write_live_link_csv(csv, arrays["blendshapes"], fps, names=ARKIT_52 if target.names is None else target.names)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    if preview is not None:
        if vertices is None or faces is None:
            raise Pseudo3DError("--preview needs a mesh: a MediaPipe-trained run, a VOCASET run with --template, "
                                "or a FLAME run with --flame-model")
        from pseudo3d.training.export import render_preview

        render_preview(preview, vertices, faces, fps, audio)
    return Animation(arrays=arrays, vertices=vertices, faces=faces)
