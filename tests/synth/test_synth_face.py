import cv2
import mediapipe as mp
import numpy as np
import pytest

from pseudo3d.synth.face import UPSAMPLE, animate_face, load_portrait


@pytest.fixture(scope="module")
def portrait():
    return load_portrait()


@pytest.fixture(scope="module")
def face_mesh():
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as mesh:
        yield mesh


def _landmarks(face_mesh, image: np.ndarray) -> np.ndarray:
    result = face_mesh.process(image)
    assert result.multi_face_landmarks, "Face Mesh found no face"
    height, width = image.shape[:2]
    return np.array([[p.x * width, p.y * height] for p in result.multi_face_landmarks[0].landmark])


def _mouth_ratio(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[13] - landmarks[14]) / np.linalg.norm(landmarks[33] - landmarks[263]))


def test_base_image_is_upscaled_with_a_level_eye_line(portrait, face_mesh):
    assert portrait.image.shape == (int(512 * UPSAMPLE), int(512 * UPSAMPLE), 3)
    found = _landmarks(face_mesh, portrait.image)
    dx, dy = found[263] - found[33]
    assert abs(np.degrees(np.arctan2(dy, dx))) < 0.5
    # The stored landmarks (mapped from the original portrait) agree with a fresh detection.
    assert np.median(np.linalg.norm(found - portrait.landmarks, axis=1)) < 3.0


def test_lip_profiles_describe_a_lens_between_the_corners(portrait):
    lips = portrait.lips
    centre = int(np.argmax(lips.lens))
    assert lips.lens[centre] == pytest.approx(1.0, abs=0.01)
    assert lips.lower[centre] - lips.upper[centre] > 5.0          # the portrait smiles, teeth showing
    assert lips.lens[0] == 0.0 and lips.lens[-1] == 0.0
    assert np.all(lips.teeth <= lips.lower - lips.upper + 1e-4)


def test_tracked_lip_gap_grows_in_proportion_to_mouth_open(portrait, face_mesh):
    openings = np.linspace(0.0, 1.0, 6)
    ratios = np.array([_mouth_ratio(_landmarks(face_mesh, animate_face(portrait, m, 0.0))) for m in openings])
    assert ratios[0] < 0.02, "lips should meet at mouth_open = 0"
    assert np.all(np.diff(ratios) > 0.0)
    assert np.corrcoef(openings, ratios)[0, 1] > 0.99
    assert ratios[-1] > 0.2


def test_closed_mouth_hides_the_teeth_and_an_open_one_shows_a_dark_cavity(portrait):
    lips = portrait.lips
    inside = np.nonzero(lips.lens > 0)[0]
    top = int(lips.upper[inside].min()) - 2
    bottom = int(np.ceil(lips.upper[inside].max() + lips.max_opening)) + 2
    region = (slice(top, bottom), slice(lips.x0 + inside[0], lips.x0 + inside[-1] + 1))

    def count(image: np.ndarray, hsv_test) -> int:
        hsv = cv2.cvtColor(np.ascontiguousarray(image[region]), cv2.COLOR_RGB2HSV).astype(int)
        return int(np.count_nonzero(hsv_test(hsv[..., 0], hsv[..., 1], hsv[..., 2])))

    def teeth(hue, saturation, value):      # near-white with a yellow cast; skin is pinker
        return (saturation < 40) & (value > 225) & (hue >= 8) & (hue <= 35)

    def dark(hue, saturation, value):
        return value < 60

    closed, half, wide = (animate_face(portrait, m, 0.0) for m in (0.0, 0.5, 1.0))
    assert count(portrait.image, teeth) > 100
    assert count(closed, teeth) < 0.05 * count(portrait.image, teeth)
    assert count(half, teeth) > 0.8 * count(portrait.image, teeth)
    assert count(closed, dark) < count(half, dark) < count(wide, dark)


def test_animation_only_redraws_the_mouth_and_eyes(portrait):
    frame = animate_face(portrait, 0.8, 1.0)
    changed = np.any(frame != portrait.image, axis=2)
    rows, cols = np.nonzero(changed)
    allowed = np.zeros_like(changed)
    for part in (portrait.lips, *portrait.eyes):
        allowed[part.y0:part.y0 + part.height, part.x0:part.x0 + part.width] = True
    assert len(rows) > 0
    assert np.all(allowed[rows, cols])


def test_animating_into_a_reused_buffer_matches_a_fresh_frame(portrait):
    buffer = portrait.image.copy()
    animate_face(portrait, 1.0, 1.0, out=buffer)
    animate_face(portrait, 0.3, 0.2, out=buffer)
    assert np.array_equal(buffer, animate_face(portrait, 0.3, 0.2))


def test_blink_closes_the_eyes(portrait, face_mesh):
    def lid_gaps(closure: float) -> np.ndarray:
        found = _landmarks(face_mesh, animate_face(portrait, 0.2, closure))
        return np.array([np.linalg.norm(found[159] - found[145]), np.linalg.norm(found[386] - found[374])])

    open_eyes, shut_eyes = lid_gaps(0.0), lid_gaps(1.0)
    assert np.all(shut_eyes < 0.4 * open_eyes)


def test_head_mask_covers_the_face_and_fades_out(portrait):
    mask = portrait.head_mask
    centre_x, centre_y = (int(round(v)) for v in portrait.face_centre)
    assert mask[centre_y, centre_x] > 0.99
    assert np.all(mask[0, :] < 1e-3) and np.all(mask[-1, :] < 1e-3)
    assert np.all(mask[:, 0] < 1e-3) and np.all(mask[:, -1] < 1e-3)
    # Eyes, nose and mouth are opaque; along the face outline the layer may blend with the backdrop.
    features = np.round(portrait.landmarks[[1, 6, 13, 14, 33, 61, 133, 263, 291, 362]]).astype(int)
    assert np.all(mask[features[:, 1], features[:, 0]] > 0.99)
    outline = np.round(portrait.face_oval).astype(int)
    assert np.all(mask[outline[:, 1], outline[:, 0]] > 0.4)
