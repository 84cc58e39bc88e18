"""What a model learns to predict per frame: :class:`TargetSpec`, and the targets of one shard clip.

Three kinds, each a ``(T, dim)`` float32 array per clip (T frames at the clip's fps):

* ``mesh_offsets`` — vertex positions minus an identity template, flattened ``(x0, y0, z0,
  x1, ...)``; ``dim = 3 · n_vertices``. The template removes who the speaker is and keeps how
  the face moves. Its source is :attr:`TargetSpec.template`: ``clip_mean`` (pseudo-3D shards:
  the clip's own mean ``mesh_smooth`` over all its frames, so every clip's offsets average to
  zero) or ``subject`` (VOCASET: the subject's neutral mesh from ``templates.pkl``). To draw a
  mesh, add any neutral template of the same topology back.
* ``flame`` — FLAME expression coefficients then the jaw pose (axis-angle, radians):
  ``flame_expression_smooth`` (T, n) ⊕ ``flame_jaw_pose_smooth`` (T, 3); ``dim = n + 3``.
* ``blendshapes`` — the 52 ARKit weights in :data:`~.blendshapes.ARKIT_BLENDSHAPES` order.

Units are the data's: MediaPipe meshes ≈ centimetres, VOCASET metres, blendshapes 0–1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from pseudo3d.config import FLAME_BACKENDS
from pseudo3d.schemas.blendshapes import ARKIT_BLENDSHAPES

KINDS = ("mesh_offsets", "flame", "blendshapes")
TEMPLATES = ("clip_mean", "subject", "none")
MESH_MEMBER = "mesh_smooth"
FLAME_MEMBERS = ("flame_expression_smooth", "flame_jaw_pose_smooth")
MESH_BACKENDS = ("mediapipe",)


@dataclass(frozen=True)
class TargetSpec:
    """The per-frame target layout. JSON-able with :meth:`to_dict` / :meth:`from_dict`."""

    kind: str
    """``mesh_offsets``, ``flame`` or ``blendshapes``."""
    dim: int
    """Values per frame (D)."""
    n_vertices: int | None = None
    """Mesh kinds only: V, with ``dim == 3 V``."""
    names: tuple[str, ...] | None = None
    """``flame``/``blendshapes``: one name per component (``exp_000``, ..., ``jaw_x``, ...)."""
    template: str = "none"
    """``mesh_offsets``: ``clip_mean`` or ``subject`` (see the module docstring); else ``none``."""
    members: tuple[str, ...] = ()
    """Shard arrays the target is made of (``mesh_smooth``; the two FLAME arrays); empty for
    finetune data, which is not read from shards."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"TargetSpec.kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"TargetSpec.dim must be a positive int, got {self.dim!r}")
        if self.template not in TEMPLATES:
            raise ValueError(f"TargetSpec.template must be one of {', '.join(TEMPLATES)}; got {self.template!r}")
        if self.kind == "mesh_offsets":
            if self.n_vertices is None or self.dim != 3 * self.n_vertices:
                raise ValueError(f"mesh_offsets needs dim == 3 * n_vertices; got dim={self.dim}, "
                                 f"n_vertices={self.n_vertices}")
            if self.template == "none":
                raise ValueError("mesh_offsets needs template 'clip_mean' or 'subject'")
        elif self.n_vertices is not None:
            raise ValueError(f"n_vertices is only for mesh_offsets, not {self.kind}")
        if self.names is not None and len(self.names) != self.dim:
            raise ValueError(f"TargetSpec.names has {len(self.names)} entries for dim={self.dim}")

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def mesh(cls, n_vertices: int, *, template: str = "clip_mean", members: tuple[str, ...] = ()) -> "TargetSpec":
        return cls("mesh_offsets", 3 * int(n_vertices), n_vertices=int(n_vertices), template=template,
                   members=members)

    @classmethod
    def flame(cls, n_expression: int, *, members: tuple[str, ...] = FLAME_MEMBERS) -> "TargetSpec":
        names = tuple(f"exp_{i:03d}" for i in range(n_expression)) + ("jaw_x", "jaw_y", "jaw_z")
        return cls("flame", n_expression + 3, names=names, members=members)

    @classmethod
    def blendshapes(cls) -> "TargetSpec":
        return cls("blendshapes", len(ARKIT_BLENDSHAPES), names=ARKIT_BLENDSHAPES)

    @classmethod
    def for_shards(cls, sample_or_meta: Mapping[str, Any]) -> "TargetSpec":
        """The target of a pseudo3d dataset, from its first sample's ``meta.json`` (or the decoded
        sample holding it): ``mediapipe`` → mesh offsets over ``mesh_smooth``; ``deca`` /
        ``spectre`` / ``flame-fit`` → FLAME expression ⊕ jaw pose."""
        meta = sample_or_meta.get("meta.json", sample_or_meta)
        backend = meta.get("backend")
        arrays = meta.get("arrays") or {}
        if backend in MESH_BACKENDS:
            shape = (arrays.get(MESH_MEMBER) or {}).get("shape") or [None, 478, 3]
            return cls.mesh(int(shape[1]), template="clip_mean", members=(MESH_MEMBER,))
        if backend in FLAME_BACKENDS:
            shape = (arrays.get(FLAME_MEMBERS[0]) or {}).get("shape")
            if not shape or len(shape) != 2:
                raise ValueError(f"sample {meta.get('key')!r} (backend {backend}) has no "
                                 f"{FLAME_MEMBERS[0]} array in its meta.json")
            return cls.flame(int(shape[1]))
        raise ValueError(f"sample {meta.get('key')!r}: backend {backend!r} has no training target; "
                         f"known backends: {', '.join(MESH_BACKENDS + FLAME_BACKENDS)}")

    # -- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim, "n_vertices": self.n_vertices,
                "names": None if self.names is None else list(self.names), "template": self.template,
                "members": list(self.members)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TargetSpec":
        unknown = set(data) - {"kind", "dim", "n_vertices", "names", "template", "members"}
        if unknown:
            raise ValueError(f"TargetSpec.from_dict: unknown fields {sorted(unknown)}")
        names = data.get("names")
        template = data.get("template") or ("clip_mean" if data["kind"] == "mesh_offsets" else "none")
        return cls(kind=data["kind"], dim=int(data["dim"]), n_vertices=data.get("n_vertices"),
                   names=None if names is None else tuple(names), template=template,
                   members=tuple(data.get("members", ())))


def shard_targets(spec: TargetSpec, arrays: Mapping[str, np.ndarray], where: str) -> np.ndarray:
    """(T, D) float32 targets of one shard clip from its decoded arrays (``NAME`` → array);
    ``where`` names the clip (shard and key) in errors."""
    if not spec.members:
        raise ValueError(f"{where}: target {spec.kind} has no shard members (a finetune-only target?)")
    missing = [name for name in spec.members if name not in arrays]
    if missing:
        raise ValueError(f"{where}: missing array(s) {', '.join(missing)} needed for {spec.kind} targets")
    if spec.kind == "mesh_offsets":
        if spec.template != "clip_mean":
            raise ValueError(f"{where}: shard mesh targets use template 'clip_mean', not {spec.template!r}")
        mesh = np.asarray(arrays[spec.members[0]], np.float32)
        if mesh.ndim != 3 or mesh.shape[1:] != (spec.n_vertices, 3):
            raise ValueError(f"{where}: {spec.members[0]} has shape {mesh.shape}, expected (T, {spec.n_vertices}, 3)")
        offsets = mesh - mesh.mean(axis=0, dtype=np.float64).astype(np.float32)
        return offsets.reshape(mesh.shape[0], -1)
    parts = [np.asarray(arrays[name], np.float32) for name in spec.members]
    for name, part in zip(spec.members, parts):
        if part.ndim != 2 or part.shape[0] != parts[0].shape[0]:
            raise ValueError(f"{where}: {name} has shape {part.shape}, expected (T, n) with T={parts[0].shape[0]}")
    target = np.concatenate(parts, axis=1)
    if target.shape[1] != spec.dim:
        shapes = ", ".join(f"{name} {part.shape}" for name, part in zip(spec.members, parts))
        raise ValueError(f"{where}: {spec.kind} target has {target.shape[1]} values per frame ({shapes}); "
                         f"the target spec expects {spec.dim}")
    return np.ascontiguousarray(target)
