"""The QA report's building blocks on small real inputs: time accounting, gallery choice, face
thumbnails, the mesh renderer (MediaPipe topology and a synthetic FLAME model)."""


import numpy as np
import pytest

from pseudo3d.qa.report.data import Dataset, failure_groups, filtered_values, funnel, seconds_lost
from pseudo3d.qa.report.frames import LANDMARK_COLOUR, draw_points
from pseudo3d.qa.report.gallery import choose_clips
from pseudo3d.qa.report.meshes import MeshUnavailable, frame_mesh
from pseudo3d.geometry.rotations import euler_yxz_to_matrix
from pseudo3d.qa.report.render import BACKGROUND, mediapipe_topology, render_mesh
from pseudo3d.storage import Storage


def _source(source_id, status="ok", duration=10.0):
    return {"source_id": source_id, "source": f"/corpus/{source_id}.mp4", "status": status, "duration_s": duration}


def _failure(source_id, stage, error, clip=None, duration=None, message="", rejections=()):
    return {"source_id": source_id, "source": f"/corpus/{source_id}.mp4", "clip": clip, "stage": stage,
            "error": error, "message": message, "duration_s": duration, "rejections": list(rejections)}


def _dataset(sources, failures, clips) -> Dataset:
    """``clips``: (source_id, clip_index, duration_s) per kept clip."""
    manifest = {"key": [f"{s}_{i:03d}" for s, i, _ in clips], "source_id": [s for s, _, _ in clips],
                "clip_index": [i for _, i, _ in clips], "duration_s": [d for _, _, d in clips]}
    return Dataset(storage=Storage("/nowhere"), card={"config": {"qa": {"min_face_size_px": 64.0, "enabled": True}}},
                   sources=sources, failures=failures, manifest=manifest)


def test_time_lost_is_never_counted_twice():
    dataset = _dataset(
        sources=[_source("a"), _source("b", "failed", 8.0), _source("c", "failed", None), _source("d", "failed", 6.0)],
        failures=[_failure("a", "track", "clip_too_short", "1.00-1.50s", 0.5),
                  _failure("b", "track", "clip_too_short", "0.00-1.00s", 1.0),
                  _failure("b", "track", "no_usable_clip"),
                  _failure("c", "probe", "not_a_video"),
                  _failure("d", "qa", "face_size_px", "d_000", 6.0,
                           "face_size_px = 41.5 is below qa.min_face_size_px = 64; "
                           "confidence_mean = 0.31 is below qa.min_confidence_mean = 0.5",
                           [{"metric": "face_size_px", "value": 41.5, "option": "min_face_size_px", "threshold": 64.0},
                            {"metric": "confidence_mean", "value": 0.31, "option": "min_confidence_mean",
                             "threshold": 0.5}])],
        clips=[("a", 0, 9.0)])
    np.testing.assert_array_equal(seconds_lost(dataset), [0.5, 1.0, 7.0, np.nan, 6.0])  # NaN: unknown
    steps = {step.key: step for step in funnel(dataset)}
    assert (steps["inputs"].count, steps["inputs"].seconds, steps["inputs"].n_unknown) == (4, 24.0, 1)
    assert (steps["probed"].count, steps["probed"].seconds) == (3, 24.0)
    assert (steps["clips"].count, steps["clips"].seconds) == (4, 9.0 + 0.5 + 1.0 + 6.0)
    assert (steps["kept"].count, steps["kept"].seconds) == (1, 9.0)
    by_error = {group.error: group for group in failure_groups(dataset, by=("error",))}
    assert by_error["clip_too_short"].count == 2 and by_error["clip_too_short"].seconds == 1.5
    assert by_error["not_a_video"].n_unknown == 1
    assert filtered_values(dataset) == {"face_size_px": [41.5], "confidence_mean": [0.31]}


def test_rejected_values_come_from_the_rows_rejections_absolute_for_max_abs_rules():
    rejection = {"metric": "av_offset_s", "value": -0.2, "option": "max_abs_av_offset_s", "threshold": 0.08}
    dataset = _dataset(sources=[_source("e", "failed", 4.0)], clips=[],
                       failures=[_failure("e", "qa", "av_offset_s", "e_000", 4.0, "(the message is not read)",
                                          [rejection])])
    assert filtered_values(dataset) == {"av_offset_s": [0.2]}


def test_gallery_spreads_over_sources_in_input_order():
    dataset = _dataset(sources=[_source("b"), _source("a"), _source("c")], failures=[],
                       clips=[("a", 1, 3.0), ("a", 0, 3.0), ("a", 2, 3.0), ("b", 0, 3.0), ("c", 0, 3.0), ("c", 1, 3.0)])
    keys = dataset.manifest["key"].to_pylist()
    chosen = [keys[row] for row in choose_clips(dataset, 5)]
    assert chosen == ["b_000", "a_000", "c_000", "a_002", "c_001"]  # a's two picks: its first and last clip
    assert choose_clips(dataset, 5) == choose_clips(dataset, 5)
    assert len(choose_clips(dataset, 50)) == 6 and choose_clips(dataset, 0) == []
    # clips of a source without a source row come after every listed source's, by id
    dataset = _dataset(sources=[_source("b")], failures=[],
                       clips=[("z", 0, 1.0), ("b", 1, 1.0), ("y", 0, 1.0), ("b", 0, 1.0)])
    assert [dataset.manifest["key"].to_pylist()[row] for row in choose_clips(dataset, 4)] == ["b_000", "y_000", "z_000", "b_001"]
    # one long source: its picks spread over the whole video, in time order
    dataset = _dataset(sources=[_source("v")], failures=[], clips=[("v", index, 1.0) for index in range(10)])
    assert [dataset.manifest["key"].to_pylist()[row] for row in choose_clips(dataset, 4)] == ["v_000", "v_003", "v_006", "v_009"]
    # a clip without a source id is a source of its own, last; a manifest without the column has no gallery
    dataset = _dataset(sources=[_source("b")], failures=[], clips=[(None, 0, 1.0), ("b", 0, 1.0)])
    assert choose_clips(dataset, 2) == [1, 0]
    assert choose_clips(Dataset(storage=Storage("/nowhere"), card={}, sources=[], failures=[],
                                manifest={"key": ["k_000"], "duration_s": [1.0]}), 3) == []


def test_the_sync_scatter_draws_an_even_sample_of_a_large_dataset():
    import base64

    import cv2

    from pseudo3d.qa.report.figures import SCATTER_MAX_CLIPS, even_sample, sync_scatter

    mask = np.ones(10, bool)
    mask[[2, 3]] = False
    assert np.flatnonzero(even_sample(mask, 4)).tolist() == [0, 4, 7, 9]  # the 1st, 3rd, 6th and 8th of 0 1 4 5 6 7 8 9
    assert np.array_equal(even_sample(mask, 8), mask)
    rng = np.random.default_rng(0)
    n = SCATTER_MAX_CLIPS * 3
    offsets, strengths = rng.normal(0.0, 20.0, n), rng.uniform(0.2, 0.9, n)
    offsets[::7] = np.nan  # unmeasured clips are neither drawn nor counted
    uri = sync_scatter(offsets, strengths, 80.0, offsets - 5.0, offsets + 5.0)
    assert uri.startswith("data:image/png;base64,")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert image.ndim == 3 and image.shape[1] > 300
    assert sync_scatter(np.full(3, np.nan), strengths[:3], 80.0) is None


def test_metric_columns_are_read_once_and_shared_read_only():
    dataset = _dataset(sources=[_source("a")], failures=[], clips=[("a", 0, 2.5), ("a", 1, 1.5)])
    durations = dataset.column("duration_s")
    assert durations.tolist() == [2.5, 1.5] and dataset.column("duration_s") is durations
    with pytest.raises(ValueError):
        durations[0] = 0.0
    assert np.isnan(dataset.column("face_size_px")).all() and not dataset.has_metric("face_size_px")


def test_thumbnails_show_the_face_of_the_frame_nearest_the_clip_s_middle():
    from pseudo3d.pipelines.thumbnails import SIZE, ThumbnailPicker
    from pseudo3d.qa.report.images import decode_jpeg

    picker = ThumbnailPicker(fps=25.0)  # a candidate every 50 frames, at 25, 75, 125, ...
    square = np.array([[100.0, 100.0], [140.0, 100.0], [100.0, 140.0], [140.0, 140.0]])  # a 40 px "face"
    for index in range(200):
        if picker.wants(index):
            image = np.full((240, 320, 3), 4 * (index // 4), np.uint8)  # the grey level names the frame
            picker.offer(index, image, square / 2, scale=2.0, size=(160, 120))  # frames decoded at twice the size
    assert picker.for_clip(0, 20) is None  # no candidate inside
    thumbnail = picker.for_clip(60, 200)  # middle 129.5: frame 125
    assert thumbnail.frame == 125 - 60
    assert thumbnail.box == (41, 41, 79, 79)  # 1.9 × 20 px wide around (60, 60), source pixels
    image = decode_jpeg(thumbnail.jpeg)
    assert image.shape == (SIZE, SIZE, 3) and abs(float(image.mean()) - 4 * (125 // 4)) < 2
    with pytest.raises(ValueError, match="not a JPEG"):
        decode_jpeg(b"hello")


def test_points_are_drawn_where_they_belong():
    image = np.zeros((40, 60, 3), np.uint8)
    drawn = draw_points(image, np.array([[10.0, 8.0], [np.nan, 5.0]]), scale=2.0, radius=1.5)
    assert drawn.shape == image.shape
    assert tuple(drawn[16, 20]) == LANDMARK_COLOUR  # (10, 8) · 2, the NaN point skipped
    assert drawn[30:, 40:].max() == 0 and drawn[:, :14].max() == 0
    assert image.max() == 0  # the input is not modified


def test_mediapipe_mesh_renders_as_a_shaded_face():
    from pseudo3d.reconstruction.template import mediapipe_template

    faces, material = mediapipe_topology()
    vertices = mediapipe_template().vertices
    assert faces.shape[1] == 3 and faces.max() < len(vertices) and (material == 1).any()
    image = render_mesh(vertices, faces, size=160, material=material)
    assert image.shape == (160, 160, 3) and image.dtype == np.uint8
    covered = (image != np.array(BACKGROUND, np.uint8)).any(axis=2)
    assert 0.3 < covered.mean() < 0.9  # a face, fitted with a margin
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # shaded, not flat
    turned = render_mesh(vertices, faces, size=160, material=material, view=euler_yxz_to_matrix(np.radians([30.0, 0.0, 0.0])))
    assert np.abs(turned.astype(int) - image.astype(int)).mean() > 5
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        render_mesh(vertices[:, :2], faces)


def test_mediapipe_sample_gives_its_mesh_frame():
    from pseudo3d.reconstruction.template import mediapipe_template

    mesh = np.stack([mediapipe_template().vertices * (1 + 0.01 * k) for k in range(4)]).astype(np.float32)
    result = frame_mesh({"mesh_smooth.npy": mesh}, 2, "mediapipe", None)
    np.testing.assert_allclose(result.vertices, mesh[2], rtol=1e-6)
    with pytest.raises(MeshUnavailable, match="no mesh"):
        frame_mesh({}, 0, "mediapipe", None)


def _flame_sample(n_frames=3, n_shape=10, n_expression=5):
    camera = np.tile(np.array([[8.0, 0.0, 0.0]], np.float32), (n_frames, 1))
    transform = np.tile(np.array([[[0.5, 0.0, 10.0], [0.0, 0.5, 20.0]]], np.float32), (n_frames, 1, 1))
    return {"flame_shape_clip.npy": np.zeros(n_shape, np.float32),
            "flame_expression_smooth.npy": np.zeros((n_frames, n_expression), np.float32),
            "flame_jaw_pose_smooth.npy": np.zeros((n_frames, 3), np.float32),
            "flame_global_pose_smooth.npy": np.zeros((n_frames, 3), np.float32),
            "flame_camera_smooth.npy": camera, "crop_transform.npy": transform,
            "meta.json": {"crop": {"size": 224}}}


def test_flame_frames_render_with_the_build_model(flame_assets):
    sample = _flame_sample()
    result = frame_mesh(sample, 1, "flame-fit", str(flame_assets["flame_model"]))
    assert result.vertices.shape[1] == 3 and result.faces.shape[1] == 3
    image = render_mesh(result.vertices, result.faces, size=120)
    assert (image != np.array(BACKGROUND, np.uint8)).any(axis=2).mean() > 0.2
    # Projection: crop pixel = s·x·112 + 112 (y flipped), then image = (crop − offset) / 0.5.
    expected_x = (8.0 * result.vertices[:, 0] * 112 + 112 - 10.0) / 0.5
    expected_y = (-8.0 * result.vertices[:, 1] * 112 + 112 - 20.0) / 0.5
    np.testing.assert_allclose(result.image_points, np.stack([expected_x, expected_y], 1), rtol=1e-4, atol=1e-3)


def test_flame_without_its_model_says_so(tmp_path):
    sample = _flame_sample()
    with pytest.raises(MeshUnavailable, match="FLAME model is not available"):
        frame_mesh(sample, 0, "deca", None)
    with pytest.raises(MeshUnavailable, match="not a readable file"):
        frame_mesh(sample, 0, "deca", str(tmp_path / "generic_model.pkl"))


def test_inspect_lists_the_first_sources_by_id_and_counts_the_rest(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pseudo3d.qa.report.summary import describe_dataset

    ids = [f"s{index}" for index in (3, 1, 2)]
    files = {table: [f"{table}/part-000000-00000000.parquet"] for table in ("sources", "failures", "manifest")}
    (tmp_path / "dataset.json").write_text(json.dumps({"config": {"qa": {"enabled": True}}, "files": files}))
    for table in files:
        (tmp_path / table).mkdir()
    pq.write_table(pa.Table.from_pylist([_source(source_id) for source_id in ids]), tmp_path / files["sources"][0])
    pq.write_table(pa.Table.from_pylist([_failure("s2", "track", "clip_too_short", "0.00-0.10s", 0.1)]),
                   tmp_path / files["failures"][0])
    clips = [("s3", 0, 2.0), ("s1", 0, 1.0), ("s1", 1, 1.5), ("s2", 0, 4.0)]
    pq.write_table(pa.table(_dataset([], [], clips).manifest), tmp_path / files["manifest"][0])
    lines = describe_dataset(tmp_path, sources_shown=2).splitlines()
    listed = lines[lines.index("clips by source:") + 1:]
    assert [line.split() for line in listed] == [["s1", "2", "clip(s)", "2.50", "s"], ["s2", "1", "clip(s)", "4.00", "s"],
                                                 ["...", "and", "1", "more", "(the", "manifest", "table,", "manifest/)"]]
