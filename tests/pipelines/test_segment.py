import numpy as np

from pseudo3d.pipelines.segment import segment_track


def _track(n, centre=(100.0, 100.0), size=50.0):
    landmarks = np.zeros((n, 4, 3), np.float32)
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float32) * size / 2
    landmarks[:, :, :2] = np.asarray(centre, np.float32) + corners
    return landmarks


def _segment(landmarks, tracked, cuts=None, **kw):
    n = landmarks.shape[0]
    options = dict(max_gap=5, min_frames=50, max_frames=1000, max_jump=0.35) | kw
    return segment_track(landmarks, tracked, np.zeros(n, bool) if cuts is None else cuts, **options)


def test_short_gap_is_interpolated_and_flagged():
    landmarks = _track(100)
    landmarks[:, :, 0] += np.arange(100)[:, None]  # moving face
    tracked = np.ones(100, bool)
    tracked[40:44] = False
    result = _segment(landmarks.copy(), tracked)
    assert result.clips == [(0, 100)]
    assert result.interpolated[40:44].all() and result.interpolated.sum() == 4
    np.testing.assert_allclose(result.landmarks[42], landmarks[42], atol=1e-4)


def test_long_gap_splits_and_short_runs_are_reported():
    tracked = np.ones(200, bool)
    tracked[60:100] = False
    tracked[170:] = False
    result = _segment(_track(200), tracked)
    assert result.clips == [(0, 60), (100, 170)]
    assert result.too_short == []
    result = _segment(_track(200), tracked, min_frames=65)
    assert result.clips == [(100, 170)] and result.too_short == [(0, 60)]


def test_cut_splits_even_without_tracking_loss():
    cuts = np.zeros(120, bool)
    cuts[70] = True
    result = _segment(_track(120), np.ones(120, bool), cuts=cuts)
    assert result.clips == [(0, 70), (70, 120)]


def test_face_jump_splits():
    landmarks = _track(120)
    landmarks[60:, :, 0] += 200  # another face, far away
    result = _segment(landmarks, np.ones(120, bool), min_frames=10)
    assert result.clips == [(0, 60), (60, 120)]


def test_sudden_resize_splits():
    landmarks = np.concatenate([_track(60, size=50), _track(60, size=120)])
    result = _segment(landmarks, np.ones(120, bool), min_frames=10)
    assert result.clips == [(0, 60), (60, 120)]


def test_long_track_split_evenly():
    result = _segment(_track(250), np.ones(250, bool), max_frames=100)
    assert result.clips == [(0, 83), (83, 167), (167, 250)]
