import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pseudo3d.reconstruction.device import CropUploader, batch_pieces, iter_batches  # noqa: E402


def test_batch_pieces_cover_every_frame_once():
    lengths = [5, 0, 7, 3]
    seen = []
    for batch in iter_batches(sum(lengths), 4):
        pieces = batch_pieces(lengths, batch)
        assert sum(stop - start for _, start, stop in pieces) == batch.stop - batch.start
        seen.extend((clip, frame) for clip, start, stop in pieces for frame in range(start, stop))
    assert seen == [(clip, frame) for clip, length in enumerate(lengths) for frame in range(length)]


def test_uploader_gathers_pieces_in_order_on_cpu():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8) for n in (3, 2))
    images = CropUploader("cpu", batch_size=5, crop_size=8)([a, b])
    assert images.shape == (5, 3, 8, 8) and images.dtype == torch.float32
    expected = torch.from_numpy(np.concatenate([a, b])).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(images, expected)
    with pytest.raises(ValueError, match="exceed"):
        CropUploader("cpu", batch_size=4, crop_size=8)([a, b])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_uploader_double_buffering_matches_cpu():
    rng = np.random.default_rng(1)
    uploader = CropUploader("cuda", batch_size=16, crop_size=224)
    batches = [[rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)] for n in (16, 9, 16, 4)]
    results = [uploader(batch) for batch in batches]  # reuse both pinned buffers twice
    for batch, result in zip(batches, results):
        expected = torch.from_numpy(batch[0]).permute(0, 3, 1, 2).float() / 255
        assert torch.equal(result.cpu(), expected)
        assert result.is_contiguous(memory_format=torch.channels_last)
