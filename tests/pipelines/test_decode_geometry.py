"""Non-square pixels: frames come out in display geometry, the probe reports the displayed size."""

from fractions import Fraction

import cv2
import numpy as np
import pytest

from pseudo3d.config import DecodeConfig
from pseudo3d.pipelines.decode import FrameDecoder
from pseudo3d.pipelines.probe import Prober, display_size
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.synth.bad_writer import VideoTrack, write_media

RADIUS_FRACTION = 0.3  # of the picture height


def _disc_video(path, stored, sar, container="mp4", codec="libx264", rotation=0):
    """Five frames stored ``stored`` (width, height) with pixels ``sar`` wide, showing a white
    disc that is round once the pixels are displayed square: stored as an ellipse whose
    horizontal radius is the vertical one divided by the SAR."""
    width, height = stored
    radius = RADIUS_FRACTION * height
    image = np.full((height, width, 3), 20, np.uint8)
    cv2.ellipse(image, (width // 2, height // 2), (int(round(radius / float(sar))), int(round(radius))),
                0, 0, 360, (235, 235, 235), thickness=-1, lineType=cv2.LINE_AA)
    options = {} if codec != "libx264" else {"preset": "veryfast", "crf": "12"}
    video = VideoTrack([image] * 5, [i / 25 for i in range(5)], width, height, Fraction(25), codec=codec,
                       options=options, sample_aspect_ratio=sar, rotation_deg=rotation)
    return write_media(path, container, video)


def _decode(path, **config):
    config = DecodeConfig(require_audio=False, **config)
    source = resolve_sources([str(path)])[0]
    probe = Prober(config)(source)
    decoder = FrameDecoder(source, probe, config)
    return probe, decoder, list(decoder)


def _disc_extent(image):
    """(width, height) of the bright disc, pixels."""
    mask = image.mean(axis=2) > 128
    columns, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return columns[-1] - columns[0] + 1, rows[-1] - rows[0] + 1


@pytest.mark.parametrize("stored, sar, displayed, container, codec", [
    ((360, 288), Fraction(64, 45), (512, 288), "mp4", "libx264"),        # PAL 16:9 (720x576 halved)
    ((720, 576), Fraction(64, 45), (1024, 576), "matroska", "libx264"),  # PAL 16:9, Matroska
    ((480, 270), Fraction(4, 3), (640, 270), "mp4", "libx264"),           # HDV (1440x1080 / 3)
    ((360, 240), Fraction(8, 9), (320, 240), "avi", "mpeg4"),             # NTSC 4:3 (720x480 halved), SAR < 1
])
def test_non_square_pixels_are_displayed_square(tmp_path, stored, sar, displayed, container, codec):
    path = _disc_video(tmp_path / f"disc.{container}", stored, sar, container, codec)
    probe, decoder, frames = _decode(path)
    assert (probe.width, probe.height) == displayed
    assert decoder.scale == 1.0 and len(frames) == 5
    image = frames[0].image
    assert image.shape == (displayed[1], displayed[0], 3)
    disc_w, disc_h = _disc_extent(image)
    assert disc_h == pytest.approx(2 * RADIUS_FRACTION * displayed[1], abs=3)
    assert disc_w / disc_h == pytest.approx(1.0, abs=0.03)  # a circle, not an ellipse


def test_downscaling_keeps_the_display_aspect(tmp_path):
    path = _disc_video(tmp_path / "pal.mp4", (720, 576), Fraction(64, 45))
    probe, decoder, frames = _decode(path, max_side=512)
    assert (probe.width, probe.height) == (1024, 576)
    assert decoder.scale == 0.5 and frames[0].image.shape == (288, 512, 3)
    disc_w, disc_h = _disc_extent(frames[0].image)
    assert disc_w / disc_h == pytest.approx(1.0, abs=0.04)


def test_rotation_applies_after_the_pixels_are_made_square(tmp_path):
    path = _disc_video(tmp_path / "turned.mp4", (360, 288), Fraction(64, 45), rotation=90)
    probe, _, frames = _decode(path)
    assert probe.rotation == 90 and (probe.width, probe.height) == (288, 512)
    assert frames[0].image.shape == (512, 288, 3)
    disc_w, disc_h = _disc_extent(frames[0].image)
    assert disc_w / disc_h == pytest.approx(1.0, abs=0.03)


def test_display_size_rules():
    assert display_size(720, 576, Fraction(64, 45)) == (1024, 576)
    assert display_size(1440, 1080, Fraction(4, 3)) == (1920, 1080)
    assert display_size(720, 480, Fraction(8, 9)) == (640, 480)
    assert display_size(640, 480, None) == display_size(640, 480, Fraction(0)) == (640, 480)


def test_a_huge_aspect_ratio_is_refused_by_the_pixel_limit(tmp_path):
    from pseudo3d.config import LimitsConfig
    from pseudo3d.errors import StageError

    path = _disc_video(tmp_path / "wide.mp4", (128, 64), Fraction(40, 1))  # 8192 pixels stored, 327680 shown
    with pytest.raises(StageError, match="limits.max_pixels") as error:
        Prober(DecodeConfig(require_audio=False), LimitsConfig(max_pixels=100_000))(resolve_sources([str(path)])[0])
    assert error.value.error == "too_large" and "5120x64" in error.value.message
