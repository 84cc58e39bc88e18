import numpy as np

from pseudo3d.pipelines.segment import TrackSegmenter


def _track(n, centre=(100.0, 100.0), size=50.0):
    landmarks = np.zeros((n, 4, 3), np.float32)
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float32) * size / 2
    landmarks[:, :, :2] = np.asarray(centre, np.float32) + corners
    return landmarks


class _Result:
    def __init__(self, segments, n):
        self.segments = segments
        self.clips = [(s.start, s.stop) for s in segments if not s.too_short]
        self.too_short = [(s.start, s.stop) for s in segments if s.too_short]
        kept = [s for s in segments if not s.too_short]
        self.landmarks = np.full((n, *kept[0].landmarks.shape[1:]), np.nan, np.float32) if kept else None
        self.interpolated = np.zeros(n, bool)
        for s in segments:
            if not s.too_short:
                self.landmarks[s.start:s.stop] = s.landmarks
                self.interpolated[s.start:s.stop] = s.interpolated


def _segment(landmarks, tracked, cuts=None, **kw):
    """Push every frame, collecting the segments with the frame whose push gave them."""
    n = landmarks.shape[0]
    options = dict(max_gap=5, min_frames=50, max_frames=1000, max_jump=0.35) | kw
    segmenter = TrackSegmenter(**options)
    cuts = np.zeros(n, bool) if cuts is None else cuts
    segments, result_at = [], {}
    for index in range(n):
        for segment in segmenter.push(landmarks[index] if tracked[index] else None, bool(cuts[index])):
            assert segment.stop <= index + 1
            segments.append(segment)
            result_at[(segment.start, segment.stop)] = index
    segments += segmenter.finish()
    result = _Result(segments, n)
    result.emitted_at = result_at
    return result


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
    # Each came out as soon as the gap after it was longer than max_gap = 5.
    assert result.emitted_at == {(0, 60): 65, (100, 170): 175}
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
    result = _segment(_track(190), np.ones(190, bool), max_frames=100)
    assert result.clips == [(0, 95), (95, 190)]


def test_a_very_long_track_is_cut_as_it_grows():
    # Reaching twice max_frames, a clip of max_frames comes off the front; the rest, when the
    # track ends, is split evenly. Memory holds at most 2 * max_frames frames of the track.
    landmarks = _track(450)
    landmarks[:, :, 0] += np.arange(450)[:, None] * 0.1  # a moving face
    tracked = np.ones(450, bool)
    tracked[98:103] = False  # a short gap across the first cut point
    segmenter = TrackSegmenter(max_gap=5, min_frames=50, max_frames=100, max_jump=0.35)
    emitted_at = {}
    for index in range(450):
        for segment in segmenter.push(landmarks[index] if tracked[index] else None):
            emitted_at[(segment.start, segment.stop)] = index
        assert index + 1 - segmenter.start <= 200
    tail = segmenter.finish()
    assert emitted_at == {(0, 100): 199, (100, 200): 299, (200, 300): 399}
    assert [(s.start, s.stop) for s in tail] == [(300, 375), (375, 450)]
    result = _segment(landmarks, tracked, max_frames=100)
    assert result.clips == [(0, 100), (100, 200), (200, 300), (300, 375), (375, 450)]
    # The gap across the cut is filled on both sides of it, on the straight line it would have had whole.
    assert result.interpolated[98:103].all() and result.interpolated.sum() == 5
    np.testing.assert_allclose(result.landmarks[98:103], landmarks[98:103], atol=1e-4)


def test_splitting_does_not_depend_on_where_the_track_starts():
    # A track of frames 1..199 (199 <= 2 * max_frames) splits where splitting frames 1..199 of
    # the video evenly puts the edge (numpy rounds 100.5 to 100), as a whole-video split did.
    tracked = np.ones(200, bool)
    tracked[0] = False
    result = _segment(_track(200), tracked, max_frames=100)
    assert result.clips == [(1, 100), (100, 200)]


def test_the_online_segmenter_equals_the_whole_track_rules_on_random_tracks():
    """Against the rules applied to the whole track at once (gaps filled per shot, runs split
    evenly in video frames) on random tracks no longer than 2 * max_frames."""
    from pseudo3d.pipelines.segment import split_evenly
    from pseudo3d.smoothing import interpolate_gaps

    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(20, 200))
        landmarks = _track(n) + rng.normal(0, 0.2, (n, 4, 3)).astype(np.float32)
        tracked = rng.random(n) > rng.choice([0.0, 0.05, 0.3])
        cuts = rng.random(n) < 0.01
        result = _segment(landmarks, tracked, cuts, max_gap=3, min_frames=10, max_frames=100)
        expected, shots = [], [0, *np.flatnonzero(cuts[1:]) + 1, n]
        for start, stop in zip(shots[:-1], shots[1:]):
            if stop > start and tracked[start:stop].any():
                _, _, runs = interpolate_gaps(landmarks[start:stop], tracked[start:stop], 3)
                for a, b in runs:
                    if b - a >= 10:
                        expected += split_evenly(start + a, start + b, 100)
        assert result.clips == expected
