"""Encoding images and matplotlib figures as base64 PNG data URIs for the self-contained page."""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np


def png_data_uri(image: np.ndarray) -> str:
    """(H, W, 3) uint8 RGB image → ``data:image/png;base64,...``."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def figure_data_uri(figure, dpi: int = 160) -> str:
    """A ``matplotlib.figure.Figure`` (made without pyplot, so no global state) → PNG data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor=figure.get_facecolor())
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def fit_within(image: np.ndarray, max_side: int, upscale: bool = False) -> np.ndarray:
    """Resize an (H, W, 3) image so its longer side is ``max_side`` (only if it is longer,
    unless ``upscale``), keeping its aspect ratio."""
    height, width = image.shape[:2]
    factor = max_side / max(height, width)
    if factor == 1 or (factor > 1 and not upscale):
        return image
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes (a sample's ``thumbnail.jpg``) → (H, W, 3) uint8 RGB. Raises ``ValueError``
    for bytes that are not a JPEG."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a JPEG image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
