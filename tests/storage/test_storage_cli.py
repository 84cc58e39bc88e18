"""What a user sees when a dataset behind a URL cannot be used: one line naming the option or the
place, never a traceback."""

import pytest

from pseudo3d.cli import main


def test_a_storage_option_for_a_local_dataset_is_refused(tmp_path, capsys, make_video):
    code = main(["build", str(make_video(n_frames=5)), "--out", str(tmp_path / "ds"),
                 "--storage-option", "endpoint_url=http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "--storage-option is for datasets and inputs behind a URL" in err and str(tmp_path / "ds") in err
    code = main(["inspect", str(tmp_path), "--storage-option", "anon"])
    assert code == 2 and "--storage-option 'anon': expected KEY=VALUE" in capsys.readouterr().err


def test_an_unknown_protocol_names_the_option(tmp_path, capsys, make_video):
    code = main(["build", str(make_video(n_frames=5)), "--out", "nosuch://bucket/ds"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--out nosuch://bucket/ds" in err


def test_a_missing_bucket_is_named(s3_endpoint, tmp_path, capsys, make_video):
    code = main(["build", str(make_video(n_frames=5)), "--out", "s3://no-such-bucket/ds"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--out s3://no-such-bucket/ds: cannot write there" in err


@pytest.mark.parametrize("command", ["inspect", "qa"])
def test_a_url_without_a_dataset_is_named(s3_bucket, capsys, command):
    code = main([command, f"{s3_bucket}/nothing"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"{s3_bucket}/nothing" in err


def test_storage_options_reach_the_filesystem(s3_bucket, s3_endpoint, capsys, monkeypatch):
    """The endpoint given as an option rather than through AWS_ENDPOINT_URL: the card is read from
    the server, and what is wrong with it is named."""
    import fsspec

    from pseudo3d.storage import Storage

    Storage(f"{s3_bucket}/half").write_bytes("dataset.json", b"{}")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setitem(fsspec.config.conf, "s3", {})  # the options are undone after the test
    monkeypatch.setenv("FSSPEC_S3", "{}")
    code = main(["qa", f"{s3_bucket}/half", "--storage-option", f"endpoint_url={s3_endpoint}",
                 "--storage-option", "skip_instance_cache=true"])
    assert code == 2 and f"{s3_bucket}/half/dataset.json is not a pseudo3d card (not a JSON object with 'files')" in \
        capsys.readouterr().err


def test_a_dataset_that_would_vanish_or_an_object_are_refused_as_out(s3_bucket, tmp_path, capsys, make_video):
    video = str(make_video(n_frames=5))
    assert main(["build", video, "--out", "memory://ds"]) == 2
    assert "a memory:// dataset ends with this process" in capsys.readouterr().err
    from pseudo3d.storage import Storage

    Storage(s3_bucket).write_bytes("notes.txt", b"x")
    assert main(["build", video, "--out", f"{s3_bucket}/notes.txt"]) == 2
    assert f"--out {s3_bucket}/notes.txt: exists and is not a directory" in capsys.readouterr().err


def test_an_unreachable_store_is_named_not_taken_for_a_missing_file(s3_bucket, capsys, monkeypatch):
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()  # a client made earlier in this process knows the real endpoint
    try:
        for command in ("qa", "inspect"):
            assert main([command, f"{s3_bucket}/ds"]) == 2
            err = capsys.readouterr().err
            assert f"{s3_bucket}/ds: cannot reach it (" in err and "dataset.json" not in err and err.count("\n") == 1
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_a_storage_option_the_filesystem_does_not_take_is_named(s3_bucket, capsys, monkeypatch):
    import fsspec

    monkeypatch.setitem(fsspec.config.conf, "s3", {})
    monkeypatch.setenv("FSSPEC_S3", "{}")
    assert main(["inspect", f"{s3_bucket}/ds", "--storage-option", "endpont_url=http://x"]) == 2
    err = capsys.readouterr().err
    assert "--storage-option: the s3:// filesystem refused its options" in err and "endpont_url" in err


def test_upper_case_schemes_and_options_given_whole_or_dotted(s3_bucket, capsys):
    from pseudo3d.errors import ConfigError
    from pseudo3d.storage import parse_storage_options

    assert main(["inspect", s3_bucket.replace("s3://", "S3://") + "/ds"]) == 2
    assert "is neither a dataset directory nor a .tar shard" in capsys.readouterr().err
    assert parse_storage_options(['config_kwargs={"retries": {"max_attempts": 2}}', "config_kwargs.read_timeout=5"]) \
        == {"config_kwargs": {"retries": {"max_attempts": 2}, "read_timeout": 5}}
    for pairs in (["a=1", "a.b=2"], ["a.b=2", "a=1"]):  # a value and a group, in either order
        with pytest.raises(ConfigError, match="a is given both as a value and as a group"):
            parse_storage_options(pairs)


def test_storage_options_reach_inputs_named_in_a_local_list_file(s3_bucket, s3_endpoint, tmp_path, make_video,
                                                                  monkeypatch):
    """Inputs on S3 listed in a local file, the dataset local, the endpoint given as an option:
    the option reaches the workers that read the video (which has no face: a no_face row, not
    an unreadable input)."""
    import fsspec
    import pyarrow.parquet as pq

    from pseudo3d.storage import Storage

    Storage(s3_bucket).write_bytes("corpus/clip.mp4", make_video(n_frames=5, audio_s=0.2).read_bytes())
    (tmp_path / "list.txt").write_text(f"{s3_bucket}/corpus/clip.mp4\n")
    (tmp_path / "build.yaml").write_text("limits:\n  allowed_protocols: [file, s3]\n")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setitem(fsspec.config.conf, "s3", {})
    monkeypatch.setenv("FSSPEC_S3", "{}")
    code = main(["build", str(tmp_path / "list.txt"), "--out", str(tmp_path / "ds"), "-q", "--workers", "1",
                 "--config", str(tmp_path / "build.yaml"), "--storage-option", f"endpoint_url={s3_endpoint}"])
    assert code == 0
    [row] = pq.read_table(tmp_path / "ds" / "failures").to_pylist()
    assert (row["stage"], row["error"]) == ("track", "no_face")
