import hashlib
import io
import tarfile

import pytest

from pseudo3d.files import HashingWriter, fsync_directory, temporary_path, write_atomically, write_bytes_atomically


def test_a_write_that_fails_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "card.json"
    write_bytes_atomically(target, b"old")

    def broken(temporary):
        temporary.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, broken)
    assert target.read_bytes() == b"old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["card.json"]


def test_a_write_creates_its_folder_and_replaces_the_file(tmp_path):
    target = tmp_path / "a" / "b.txt"
    write_bytes_atomically(target, b"one")
    write_bytes_atomically(target, b"two")
    assert target.read_bytes() == b"two" and not temporary_path(target).exists()
    fsync_directory(tmp_path / "missing")  # nothing to sync is not an error


def test_the_hashing_writer_s_digest_is_the_file_s(tmp_path):
    path = tmp_path / "x.tar"
    writer = HashingWriter(path)
    with tarfile.open(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("k.json")
        payload = b'{"a": 1}' * 1000
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    writer.close()
    data = path.read_bytes()
    assert writer.hexdigest() == hashlib.sha256(data).hexdigest() and writer.size == len(data)
    with tarfile.open(path) as tar:
        assert tar.extractfile("k.json").read() == payload
