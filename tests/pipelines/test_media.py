"""The container policy's thread budget: a worker's FFmpeg decoders, OpenCV and PyTorch share its
``limits.threads_per_worker``."""

import cv2

from pseudo3d.pipelines import media


def test_limit_threads_caps_decoders_opencv_and_torch(make_video):
    import torch

    path = make_video(n_frames=5)
    before = (cv2.getNumThreads(), torch.get_num_threads())
    try:
        media.limit_threads(1)
        with media.open_container(str(path), "decode") as container:
            assert container.streams.video[0].thread_count == 1
            assert sum(1 for _ in container.decode(video=0)) == 5
        assert cv2.getNumThreads() == 1 and torch.get_num_threads() == 1
    finally:
        media.limit_threads(0)
        cv2.setNumThreads(before[0])
        torch.set_num_threads(before[1])
    with media.open_container(str(path), "decode") as container:
        assert container.streams.video[0].thread_count == 0  # FFmpeg's own choice again
