"""The storage layer on a local folder, on fsspec's memory filesystem and on a real S3-compatible
server on 127.0.0.1: writes are whole or absent, create-if-absent has exactly one winner, listings
are fresh."""

import concurrent.futures
import hashlib
import io
import os
import tarfile

import pytest

from pseudo3d.errors import ConfigError, Pseudo3DError
from pseudo3d.storage import Storage, apply_storage_options, parse_storage_options, protocol_of

MiB = 2 ** 20


@pytest.fixture(params=["local", "memory", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return Storage(tmp_path / "root")
    if request.param == "memory":
        return Storage(f"memory://{tmp_path.name}/root")
    return Storage(f"{request.getfixturevalue('s3_bucket')}/root")


def test_a_write_is_published_whole_and_a_failed_one_leaves_the_old_file(storage):
    storage.write_bytes("a/card.json", b"old")
    with pytest.raises(OSError, match="disk full"):
        with storage.open_write("a/card.json") as writer:
            writer.write(b"half")
            raise OSError("disk full")
    assert storage.read_bytes("a/card.json") == b"old"
    assert storage.list("a") == ["card.json"]  # no temporary file or object left behind
    storage.write_bytes("a/card.json", b"new")
    assert storage.read_bytes("a/card.json") == b"new" and storage.is_file("a/card.json")


def test_the_writer_s_digest_and_size_are_the_file_s(storage):
    with storage.open_write("x.tar") as writer:
        with tarfile.open(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            payload = b'{"a": 1}' * 1000
            info = tarfile.TarInfo("k.json")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    data = storage.read_bytes("x.tar")
    assert (writer.hexdigest(), writer.size) == (hashlib.sha256(data).hexdigest(), len(data))
    with tarfile.open(fileobj=storage.open_read("x.tar")) as tar:
        assert tar.extractfile("k.json").read() == payload


def test_create_writes_only_where_nothing_is(storage):
    assert storage.create("markers/unit-0.json", b"first")
    assert not storage.create("markers/unit-0.json", b"second")
    assert storage.read_bytes("markers/unit-0.json") == b"first"
    assert storage.list("markers") == ["unit-0.json"]


def test_listing_deleting_and_moving(storage):
    assert storage.list("shards") == [] and not storage.exists("shards/x")
    for name in ("b.json", "a.tar", "sub/c.tar"):
        storage.write_bytes(f"shards/{name}", name.encode())
    assert storage.list("shards") == ["a.tar", "b.json", "sub"]
    storage.move("shards/a.tar", "shards/d.tar")
    assert storage.list("shards") == ["b.json", "d.tar", "sub"] and storage.read_bytes("shards/d.tar") == b"a.tar"
    storage.delete("shards/b.json")
    storage.delete("shards/missing.json")  # nothing to delete is not an error
    storage.delete_tree("shards/sub")
    storage.delete_tree("shards/missing")
    assert storage.list("shards") == ["d.tar"]
    for index in range(5):
        storage.write_bytes(f"parts/{index}.parquet", b"x")
    storage.delete_many(["parts/0.parquet", "parts/missing.parquet", "parts/3.parquet", "parts/4.parquet"])
    assert storage.list("parts") == ["1.parquet", "2.parquet"]
    storage.delete_many(["parts/missing.parquet", "parts/gone.parquet"])
    assert storage.list("parts") == ["1.parquet", "2.parquet"]


def test_racing_creators_have_exactly_one_winner(storage):
    """Sixteen writers, each with its own filesystem client, race to create one marker."""
    def attempt(index: int) -> bool:
        return Storage(storage.url).create("commit.json", f"writer {index}".encode())

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        won = list(pool.map(attempt, range(16)))
    assert sum(won) == 1
    assert storage.read_bytes("commit.json") == f"writer {won.index(True)}".encode()
    assert storage.list() == ["commit.json"]


def test_an_abandoned_multipart_upload_publishes_nothing(s3_bucket):
    storage = Storage(f"{s3_bucket}/big")
    with pytest.raises(RuntimeError):
        with storage.open_write("shard.tar", block_size=5 * MiB) as writer:
            writer.write(os.urandom(12 * MiB))  # two parts uploaded
            raise RuntimeError("worker preempted")
    assert storage.list() == []
    with storage.open_write("shard.tar", block_size=5 * MiB) as writer:
        writer.write(b"\0" * (12 * MiB))
    assert storage.fs.info(storage.path("shard.tar"))["size"] == 12 * MiB


def test_local_paths_and_urls_are_told_apart(tmp_path):
    assert protocol_of(tmp_path) == "file" and protocol_of("S3://b/k") == "s3" and protocol_of("C:/x") == "file"
    assert protocol_of("simplecache::s3://b/k") == "simplecache::s3"  # a chain is named whole (allowed_protocols)
    assert Storage(f"file://{tmp_path}").is_local and Storage(tmp_path).url == str(tmp_path)
    assert Storage("memory://ds/x").url == "memory:///ds/x" and Storage("memory://ds/x").name == "x"  # fsspec's form


def test_an_unknown_protocol_names_the_option():
    with pytest.raises(Pseudo3DError, match=r"--out nosuch://b/ds: .*nosuch"):
        Storage("nosuch://b/ds")


def test_storage_options_parse_and_reach_new_filesystems(monkeypatch):
    assert parse_storage_options(["endpoint_url=http://127.0.0.1:9000", "anon=true", "max_concurrency=4",
                                  "client_kwargs.region_name=eu-west-1"]) == {
        "endpoint_url": "http://127.0.0.1:9000", "anon": True, "max_concurrency": 4,
        "client_kwargs": {"region_name": "eu-west-1"}}
    for bad in ("endpoint_url", "=x", "a..b=1"):
        with pytest.raises(ConfigError, match=f"--storage-option '{bad}': expected KEY=VALUE"):
            parse_storage_options([bad])
    import fsspec

    monkeypatch.setitem(fsspec.config.conf, "memory", {})
    monkeypatch.delenv("FSSPEC_MEMORY", raising=False)
    apply_storage_options("memory", {"skip_instance_cache": True})
    assert fsspec.config.conf["memory"] == {"skip_instance_cache": True}
    assert os.environ["FSSPEC_MEMORY"] == '{"skip_instance_cache": true}'  # what worker processes read
    monkeypatch.delenv("FSSPEC_MEMORY")
