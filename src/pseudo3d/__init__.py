"""pseudo3d: pseudo-3D facial motion datasets from 2D talking-head video."""

__version__ = "0.1.0"
