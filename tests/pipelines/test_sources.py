import hashlib
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.sources import make_source_id, resolve_sources


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    (root / "spk1").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for name in ("spk1/a.mp4", "spk1/b.MOV", "c.mkv", ".hidden/d.mp4", "notes.txt", "c.truth.json"):
        (root / name).write_bytes(b"x")
    return root


def test_directory_finds_videos_recursively(corpus):
    sources = resolve_sources([str(corpus)])
    assert [s.identity for s in sources] == ["corpus/c.mkv", "corpus/spk1/a.mp4", "corpus/spk1/b.MOV"]
    assert all("." not in s.source_id for s in sources)


def test_keys_survive_moving_the_corpus(corpus, tmp_path):
    before = [s.source_id for s in resolve_sources([str(corpus)])]
    moved = tmp_path / "elsewhere" / "corpus"
    moved.parent.mkdir()
    corpus.rename(moved)
    assert [s.source_id for s in resolve_sources([str(moved)])] == before


def test_glob_keeps_videos_relative_to_its_base(corpus):
    sources = resolve_sources([str(corpus / "spk1" / "*")])
    assert [s.identity for s in sources] == ["spk1/a.mp4", "spk1/b.MOV"]


def test_explicit_non_video_file_is_kept(corpus):
    path = corpus / "c.truth.json"
    sources = resolve_sources([str(path)])
    assert [s.uri for s in sources] == [str(path)]


def test_csv_list_with_metadata_and_ids(corpus, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,speaker,licence,id\ncorpus/spk1/a.mp4,7,cc-by,talk-a\ncorpus/c.mkv,8,cc0,\n")
    sources = resolve_sources([str(listing)])
    by_identity = {s.identity: s for s in sources}
    assert set(by_identity) == {"talk-a", "corpus/c.mkv"}
    assert by_identity["talk-a"].metadata == {"speaker": "7", "licence": "cc-by"}  # text, whatever the column's type
    assert by_identity["talk-a"].uri == str(corpus / "spk1" / "a.mp4")


def test_parquet_and_txt_lists(corpus, tmp_path):
    pq.write_table(pa.table({"path": [str(corpus / "c.mkv")], "lang": ["en"]}), tmp_path / "l.parquet")
    assert resolve_sources([str(tmp_path / "l.parquet")])[0].metadata == {"lang": "en"}
    (tmp_path / "l.txt").write_text(f"# comment\n{corpus / 'c.mkv'}\n\n")
    assert len(resolve_sources([str(tmp_path / "l.txt")])) == 1


def test_duplicates_are_processed_once(corpus):
    assert len(resolve_sources([str(corpus), str(corpus / "c.mkv")])) == 3


@pytest.mark.parametrize("make_input, message", [
    (lambda root, tmp: str(tmp / "missing.mp4"), "input not found"),
    (lambda root, tmp: str(root / "*.webm"), "matched no video files"),
    (lambda root, tmp: str((tmp / "empty").mkdir() or tmp / "empty"), "no video files found"),
])
def test_bad_inputs_are_clear_errors(corpus, tmp_path, make_input, message):
    with pytest.raises(Pseudo3DError, match=message):
        resolve_sources([make_input(corpus, tmp_path)])


def test_list_file_without_path_column(tmp_path):
    (tmp_path / "l.csv").write_text("file\na.mp4\n")
    with pytest.raises(Pseudo3DError, match="needs a 'path' column"):
        resolve_sources([str(tmp_path / "l.csv")])


def test_sizes_come_from_the_listing(corpus, tmp_path):
    """Directories, globs and single files from their listing; a list file's local entries from
    ``stat``; a URL in a list file has none (a request per entry would cost more than the list)."""
    (corpus / "spk1" / "a.mp4").write_bytes(bytes(1234))
    expected = {"corpus/c.mkv": 1, "corpus/spk1/a.mp4": 1234, "corpus/spk1/b.MOV": 1}
    assert {s.identity: s.size_bytes for s in resolve_sources([str(corpus)])} == expected
    assert [s.size_bytes for s in resolve_sources([str(corpus / "spk1" / "*")])] == [1234, 1]
    assert [s.size_bytes for s in resolve_sources([str(corpus / "spk1" / "a.mp4")])] == [1234]
    listing = tmp_path / "list.csv"
    listing.write_text("path\ncorpus/spk1/a.mp4\ncorpus/gone.mp4\ns3://bucket/e.mp4\n")
    assert {s.identity: s.size_bytes for s in resolve_sources([str(listing)])} == {
        "corpus/spk1/a.mp4": 1234, "corpus/gone.mp4": None, "s3://bucket/e.mp4": None}


def test_fsspec_memory_urls():
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/videos/a.mp4", b"x")
    fs.pipe("/bucket/videos/b.webm", b"x")
    sources = resolve_sources(["memory://bucket/videos"])
    assert [s.uri for s in sources] == ["memory:///bucket/videos/a.mp4", "memory:///bucket/videos/b.webm"]
    assert [s.size_bytes for s in sources] == [1, 1]


def test_source_id_is_readable_and_stable():
    assert make_source_id("corpus/Spk 1/Talk.v2.mp4") == make_source_id("corpus/Spk 1/Talk.v2.mp4")
    assert make_source_id("corpus/Spk 1/Talk.v2.mp4") == "spk-1-talk-v2-" + hashlib.sha256(
        b"corpus/Spk 1/Talk.v2.mp4").hexdigest()[:16]
    assert make_source_id("a.mp4").startswith("a-")


def test_ids_that_collided_with_32_bits_are_distinct():
    """The pair that shared ``video-b98409df`` in a 57k-speaker SPEAKER/video.mp4 corpus."""
    pair = ("ids/0047496/video.mp4", "ids/0057299/video.mp4")
    assert len({hashlib.sha1(identity.encode()).hexdigest()[:8] for identity in pair}) == 1
    assert [make_source_id(identity)[:-17] for identity in pair] == ["0047496-video", "0057299-video"]
    assert len({make_source_id(identity)[-16:] for identity in pair}) == 2


def test_two_inputs_with_one_identity_are_an_error_naming_both(tmp_path):
    for side in ("a", "b"):
        (tmp_path / side / "corpus").mkdir(parents=True)
        (tmp_path / side / "corpus" / "x.mp4").write_bytes(b"x")
    first, second = tmp_path / "a" / "corpus", tmp_path / "b" / "corpus"
    with pytest.raises(Pseudo3DError) as error:
        resolve_sources([str(first), str(second)])
    message = str(error.value)
    assert str(first / "x.mp4") in message and str(second / "x.mp4") in message
    assert "'corpus/x.mp4'" in message and "'id' column" in message


def test_a_duplicate_id_in_a_list_file_is_an_error_naming_both(corpus, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,id\ncorpus/spk1/a.mp4,talk\ncorpus/c.mkv,talk\n")
    expected = f"inputs {corpus / 'spk1' / 'a.mp4'} and {corpus / 'c.mkv'} both have the identity 'talk'"
    with pytest.raises(Pseudo3DError, match=re.escape(expected)):
        resolve_sources([str(listing)])


def test_an_input_url_whose_protocol_is_not_allowed_is_refused_before_listing():
    import fsspec

    fsspec.filesystem("memory").pipe("/guarded/a.mp4", b"x")
    with pytest.raises(Pseudo3DError, match="limits.allowed_protocols"):
        resolve_sources(["memory://guarded"], allowed_protocols=("file",))
    assert len(resolve_sources(["memory://guarded"], allowed_protocols=("file", "memory"))) == 1


def test_existing_paths_with_glob_characters_are_taken_literally(tmp_path):
    takes = tmp_path / "takes [2020]"
    (takes / "day?").mkdir(parents=True)
    for name in ("clip[1].mp4", "clip1.mp4", "star*.mkv", "day?/b.mp4"):
        (takes / name).write_bytes(b"x")
    # a file whose name is also a pattern matching another file
    assert [s.uri for s in resolve_sources([str(takes / "clip[1].mp4")])] == [str(takes / "clip[1].mp4")]
    assert [s.uri for s in resolve_sources([str(takes / "star*.mkv")])] == [str(takes / "star*.mkv")]
    # a folder with brackets in its name
    sources = resolve_sources([str(takes)])
    assert [s.identity for s in sources] == ["takes [2020]/clip1.mp4", "takes [2020]/clip[1].mp4",
                                             "takes [2020]/day?/b.mp4", "takes [2020]/star*.mkv"]
    assert len({s.source_id for s in sources}) == 4
    # a pattern inside that folder: the existing folder is literal, the rest a pattern
    sources = resolve_sources([str(takes / "*.mp4")])
    assert [s.identity for s in sources] == ["takes [2020]/clip1.mp4", "takes [2020]/clip[1].mp4"]
    assert [s.identity for s in resolve_sources([str(takes / "day?" / "*.mp4")])] == ["day?/b.mp4"]
    # a pattern that names no existing file still globs: [1] is the character class {1}
    assert [s.identity for s in resolve_sources([str(takes / "clip[12].mp4")])] == ["takes [2020]/clip1.mp4"]


def test_list_file_values_become_text_so_one_column_has_one_type(corpus, tmp_path):
    """Two list files that type the same column differently (7 in one, a name in the other) give
    one text column: each index part of a dataset must type a column alike."""
    import datetime as dt

    from pseudo3d.pipelines.sources import metadata_text

    (tmp_path / "one.csv").write_text("path,speaker,kept\ncorpus/spk1/a.mp4,7,true\n")
    (tmp_path / "two.csv").write_text("path,speaker,kept\ncorpus/c.mkv,anna,false\n")
    sources = resolve_sources([str(tmp_path / "one.csv"), str(tmp_path / "two.csv")])
    assert {source.identity: dict(source.metadata) for source in sources} == {
        "corpus/spk1/a.mp4": {"speaker": "7", "kept": "true"}, "corpus/c.mkv": {"speaker": "anna", "kept": "false"}}
    assert metadata_text(dt.datetime(2020, 5, 1, 12, 30)) == "2020-05-01T12:30:00" and metadata_text(1.5) == "1.5"
    assert metadata_text([1, "a"]) == '[1, "a"]'


def test_the_first_of_two_inputs_naming_one_file_is_kept(corpus, caplog):
    """A file named alone and again inside its folder: the one named first (its identity), once,
    with one warning however many files repeat."""
    sources = resolve_sources([str(corpus / "c.mkv"), str(corpus), str(corpus / "spk1" / "a.mp4")])
    assert [s.identity for s in sources] == ["c.mkv", "corpus/spk1/a.mp4", "corpus/spk1/b.MOV"]
    [warning] = [record.getMessage() for record in caplog.records if "more than once" in record.getMessage()]
    assert warning.startswith("2 input(s) are named more than once")


def test_a_source_list_is_a_sequence_of_sources_and_a_pickled_slice_carries_its_rows_alone(tmp_path):
    import pickle

    from pseudo3d.pipelines.sources import SourceList
    from pseudo3d.schemas.records import Chunk, Source

    listing = tmp_path / "list.csv"
    listing.write_text("path,speaker\n" + "".join(f"s3://bucket/{index:05d}.mp4,{index % 7}\n" for index in range(5000)))
    sources = resolve_sources([str(listing)])
    made = list(sources)
    assert isinstance(sources, SourceList) and len(sources) == 5000 and sources == made
    assert made[42] == Source(uri="s3://bucket/00042.mp4", identity="s3://bucket/00042.mp4",
                              source_id=make_source_id("s3://bucket/00042.mp4"), metadata={"speaker": "0"})
    assert sources[-1] == made[-1] and sources[10:13] == made[10:13] and sources[::1000] == made[::1000]
    assert SourceList.of(made) == sources and SourceList.of(sources) is sources
    assert sources[:2] + sources[4:5] == [*made[:2], made[4]] and made[:1] + sources[1:2] == made[:2]
    one = sources.slice(7, 8)
    assert pickle.loads(pickle.dumps(one)) == [made[7]]
    assert len(pickle.dumps(one)) * 100 < len(pickle.dumps(sources))
    with pytest.raises(ValueError, match="chunk of a source"):
        SourceList.of([Source(uri="a", identity="a", source_id="a-0", chunk=Chunk(0, 2, 0, 10, 25.0))])


def test_two_identities_with_one_source_id_are_an_error_naming_both(corpus, monkeypatch):
    """64 bits of SHA-256 make this about 1 in 3·10⁷ for a million sources; forced here."""
    import pseudo3d.pipelines.sources as sources

    monkeypatch.setattr(sources, "make_source_id", lambda identity: "same-0000000000000000")
    expected = f"inputs {corpus / 'c.mkv'} and {corpus / 'spk1' / 'a.mp4'} get the same source id same-0000000000000000"
    with pytest.raises(Pseudo3DError, match=re.escape(expected)):
        resolve_sources([str(corpus)])


def test_csv_paths_and_ids_are_read_as_written(corpus, tmp_path):
    """An id column of digits keeps its leading zeros (00123 is not 123: the key derives from it),
    and a path of digits is a path, not an empty one."""
    (corpus / "007").write_bytes(b"x")
    listing = tmp_path / "list.csv"
    listing.write_text("path,id,take\ncorpus/spk1/a.mp4,00123,1\ncorpus/007,0042,2\n")
    sources = resolve_sources([str(listing)])
    assert [(s.identity, s.uri, dict(s.metadata)) for s in sources] == [
        ("00123", str(corpus / "spk1" / "a.mp4"), {"take": "1"}), ("0042", str(corpus / "007"), {"take": "2"})]
