"""What a user sees when a dataset behind a URL cannot be used: one line naming the option or the
place, never a traceback."""

import pytest

from pseudo3d.cli import main


def test_a_storage_option_for_a_local_dataset_is_refused(tmp_path, capsys, make_video):
    code = main(["build", str(make_video(n_frames=5)), "--out", str(tmp_path / "ds"),
                 "--storage-option", "endpoint_url=http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "--storage-option is for a dataset behind a URL" in err and str(tmp_path / "ds") in err
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
    the server, and the first file missing is named."""
    import fsspec

    from pseudo3d.storage import Storage

    Storage(f"{s3_bucket}/half").write_bytes("dataset.json", b"{}")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setitem(fsspec.config.conf, "s3", {})  # the options are undone after the test
    monkeypatch.setenv("FSSPEC_S3", "{}")
    code = main(["qa", f"{s3_bucket}/half", "--storage-option", f"endpoint_url={s3_endpoint}",
                 "--storage-option", "skip_instance_cache=true"])
    assert code == 2 and "has no sources.parquet" in capsys.readouterr().err
