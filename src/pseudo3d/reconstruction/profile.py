"""What a FLAME sample holds, said exactly (the ``flame`` entry of ``meta.json``), and the
``tfhp`` output profile: the arrays and smoothing of DiffPoseTalk's TFHP dataset.

FLAME variants differ in ways that silently break training when datasets are mixed (FLAME 2020
vs 2023, 100/50 vs 300/100 components, rotation formats, camera models), so every sample of a
FLAME backend records its model file (SHA-256, and the variant where its official file name
says it), the component counts, the rotation format of each pose array and the camera model.

**TFHP** (Sun et al., "DiffPoseTalk", SIGGRAPH 2024; github.com/DiffPoseTalk/DiffPoseTalk
``scripts_for_dataset``): SPECTRE's expression and jaw at 25 fps with 16 kHz audio (640 samples a
frame). Its ``combine_mica_and_spectre.py`` keeps only the jaw's rotation about x (the pose
converted to intrinsic XYZ Euler angles, y and z set to 0, back to axis-angle), then applies a
Savitzky–Golay filter of window 5 and order 2 to the jaw's axis-angle and to the expression; its
``fix_pose_prediction.py`` smooths the head's axis-angle with window 7, order 2 (TFHP's head pose
comes from 6DRepNet; here it is the backend's). Its shape is MICA's, constant over a clip; here
the clip's identity (``flame_shape_clip``). With ``reconstruct.flame_profile: tfhp`` a sample
also holds ``tfhp_shape`` (T, 100), ``tfhp_exp`` (T, 50) and ``tfhp_pose`` (T, 6: head
axis-angle, jaw axis-angle), float32, what DiffPoseTalk's loader reads as ``shape``, ``exp`` and
``pose``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from pseudo3d.config import TFHP_EXPRESSION_WINDOW, TFHP_HEAD_WINDOW

if TYPE_CHECKING:
    from pseudo3d.config import BuildConfig

_VARIANTS = {"generic_model.pkl": "FLAME 2020", "male_model.pkl": "FLAME 2020", "female_model.pkl": "FLAME 2020",
             "flame2023.pkl": "FLAME 2023", "flame2023_no_jaw.pkl": "FLAME 2023",
             "flame2023_open.pkl": "FLAME 2023 Open"}
"""Official file names → FLAME variant (compared in lower case)."""


def flame_variant(path: str | Path) -> str:
    """The FLAME variant an official file name says (``FLAME 2020``, ``FLAME 2023``, ``FLAME 2023
    Open``), or ``unknown`` for any other name."""
    return _VARIANTS.get(Path(path).name.lower(), "unknown")


def flame_description(config: "BuildConfig", assets: Mapping[str, str]) -> dict[str, object]:
    """The ``flame`` entry of a FLAME sample's ``meta.json``: the model (file name, SHA-256 from
    ``assets``, variant), component counts, each pose array's rotation format, the camera model
    and the output profile."""
    options = config.reconstruct
    model = Path(options.flame_model or "")
    half = config.track.crop_size / 2
    return {
        "model": {"name": model.name, "sha256": assets.get("flame_model", ""), "variant": flame_variant(model)},
        "n_shape": options.n_shape,
        "n_expression": options.n_expression,
        "rotations": {"flame_global_pose": "axis-angle, radians, FLAME's camera frame (x right, y up, z to the viewer)",
                      "flame_jaw_pose": "axis-angle, radians"},
        "camera": f"weak perspective (s, tx, ty): crop pixel = (s (X_xy + t)) * (1, -1) * {half:g} + {half:g}, "
                  "image pixel through crop_transform",
        "profile": options.flame_profile,
    }


def tfhp_arrays(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A FLAME backend's raw outputs of one clip (``flame_expression`` (T, ≥50),
    ``flame_jaw_pose`` (T, 3), ``flame_global_pose`` (T, 3), ``flame_shape_clip`` (≥100,)) → TFHP's
    ``tfhp_shape`` (T, 100), ``tfhp_exp`` (T, 50), ``tfhp_pose`` (T, 6), float32, by TFHP's recipe
    (module docstring). Raises ValueError for a clip shorter than the head pose's window (7
    frames: ``reconstruct.flame_profile: tfhp`` asks for ``track.min_clip_s`` of at least 0.28 s)."""
    from scipy.signal import savgol_filter
    from scipy.spatial.transform import Rotation

    expression = np.asarray(outputs["flame_expression"], np.float64)[:, :50]
    n_frames = expression.shape[0]
    if n_frames < TFHP_HEAD_WINDOW[0]:
        raise ValueError(f"the TFHP profile smooths head pose over {TFHP_HEAD_WINDOW[0]} frames; "
                         f"this clip has {n_frames}")
    jaw_x = Rotation.from_rotvec(np.asarray(outputs["flame_jaw_pose"], np.float64)).as_euler("XYZ")[:, 0]
    jaw = np.zeros((n_frames, 3))
    jaw[:, 0] = jaw_x  # the rotation about x alone, as axis-angle (|x| < pi)
    jaw = savgol_filter(jaw, *TFHP_EXPRESSION_WINDOW, axis=0)
    head = savgol_filter(np.asarray(outputs["flame_global_pose"], np.float64), *TFHP_HEAD_WINDOW, axis=0)
    shape = np.asarray(outputs["flame_shape_clip"], np.float32)[:100]
    return {
        "tfhp_shape": np.repeat(shape[None], n_frames, axis=0),
        "tfhp_exp": savgol_filter(expression, *TFHP_EXPRESSION_WINDOW, axis=0).astype(np.float32),
        "tfhp_pose": np.concatenate([head, jaw], axis=1).astype(np.float32),
    }
