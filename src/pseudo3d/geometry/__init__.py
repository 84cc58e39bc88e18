"""Pure-math 3D geometry: rotation conversions and similarity alignment (numpy only)."""

from pseudo3d.geometry.procrustes import (
    apply_similarity,
    invert_similarity,
    similarity_procrustes,
    similarity_procrustes_batch,
)
from pseudo3d.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    euler_yxz_to_matrix,
    geodesic_angle,
    make_quaternions_continuous,
    matrix_to_axis_angle,
    matrix_to_euler_yxz,
    matrix_to_quaternion,
    nearest_equivalent_axis_angle,
    normalize_quaternion,
    quaternion_slerp,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
)

__all__ = [
    "apply_similarity",
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "euler_yxz_to_matrix",
    "geodesic_angle",
    "invert_similarity",
    "make_quaternions_continuous",
    "matrix_to_axis_angle",
    "matrix_to_euler_yxz",
    "matrix_to_quaternion",
    "nearest_equivalent_axis_angle",
    "normalize_quaternion",
    "quaternion_slerp",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "similarity_procrustes",
    "similarity_procrustes_batch",
]
