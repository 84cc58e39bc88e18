"""The quality bar: a face tracker must see the synthetic face and its mouth as the truth says.

Runs MediaPipe Face Mesh in video mode over every video of the default corpus and compares the
tracked inner-lip gap (landmarks 13-14, over the outer-eye-corner distance 33-263) and eye-line
angle with the truth's ``mouth_open`` and ``roll_rad``.
"""

import json

import av
import mediapipe as mp
import numpy as np
import pytest

from pseudo3d.synth.corpus import SCENARIOS

MIN_FOUND = 0.98
MIN_MOUTH_R = 0.95
MIN_ROLL_R = 0.8


@pytest.fixture(scope="module")
def tracked(synthetic_corpus):
    """Per video of the shared test corpus (one per scenario): (truth, found (T,), mouth ratio (T,),
    eye-line angle (T,)); NaN where not found."""
    names = {scenario.name for scenario in SCENARIOS}
    results = {}
    for sidecar in sorted(synthetic_corpus.glob("*.truth.json")):
        truth = json.loads(sidecar.read_text())
        if truth["scenario"] not in names:
            continue
        path = sidecar.with_name(sidecar.name[:-len(".truth.json")] + ".mp4")
        found, ratio, angle = [], [], []
        with av.open(str(path)) as container, mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, refine_landmarks=True, max_num_faces=1) as mesh:
            for frame in container.decode(video=0):
                image = frame.to_ndarray(format="rgb24")
                faces = mesh.process(image).multi_face_landmarks
                found.append(bool(faces))
                if not faces:
                    ratio.append(np.nan)
                    angle.append(np.nan)
                    continue
                height, width = image.shape[:2]
                points = np.array([[p.x * width, p.y * height] for p in faces[0].landmark])
                eye_line = points[263] - points[33]
                ratio.append(np.linalg.norm(points[13] - points[14]) / np.linalg.norm(eye_line))
                angle.append(np.arctan2(eye_line[1], eye_line[0]))
        results[truth["scenario"]] = (truth, np.array(found), np.array(ratio), np.array(angle))
    return results


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [s.name for s in SCENARIOS])
def test_tracker_finds_the_face_and_follows_mouth_and_roll(tracked, scenario):
    truth, found, ratio, angle = tracked[scenario]
    assert len(found) == truth["n_frames"]
    visible = np.array(truth["face_visible"])
    assert found[visible].mean() >= MIN_FOUND
    usable = visible & found
    mouth_r = _pearson(ratio[usable], np.array(truth["mouth_open"])[usable])
    roll_r = _pearson(angle[usable], np.array(truth["head_pose"]["roll_rad"])[usable])
    print(f"{scenario}: found {found[visible].mean():.3f}, mouth r {mouth_r:.3f}, roll r {roll_r:.3f}")
    assert mouth_r >= MIN_MOUTH_R
    assert roll_r >= MIN_ROLL_R
