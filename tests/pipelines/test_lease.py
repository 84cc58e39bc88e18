"""One build at a time writes into a dataset: the build lease, locally and on the S3 test server."""

import datetime as dt
import json
import socket

import pytest

from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.lease import EXPIRE_S, BuildLease
from pseudo3d.schemas.layout import LEASE
from pseudo3d.storage import Storage


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    root = tmp_path / "ds" if request.param == "local" else request.getfixturevalue("s3_bucket") + "/ds"
    return Storage(root)


def _held_by(storage, *, host, pid, renewed_s_ago):
    renewed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=renewed_s_ago)
    storage.write_bytes(LEASE, json.dumps({"build": "other", "host": host, "pid": pid, "started": "earlier",
                                           "renewed": renewed.isoformat(timespec="seconds")}).encode())


def test_a_second_build_is_refused_while_the_first_holds_the_lease(storage):
    with BuildLease(storage) as first:
        assert json.loads(storage.read_bytes(LEASE))["build"] == first.build
        with pytest.raises(Pseudo3DError, match=f"^{storage.url}: another build is writing into this dataset .host {socket.gethostname()}"
                                                ".*one build at a time.*delete .*_lease.json"):
            BuildLease(storage).acquire()
    assert not storage.exists(LEASE)
    with BuildLease(storage):  # free again
        pass


def test_a_lease_of_a_build_that_stopped_is_taken_over(storage):
    _held_by(storage, host=socket.gethostname(), pid=2 ** 22 + 7, renewed_s_ago=0)  # no such process here
    with BuildLease(storage) as lease:
        assert json.loads(storage.read_bytes(LEASE))["build"] == lease.build
    _held_by(storage, host="elsewhere", pid=1, renewed_s_ago=EXPIRE_S + 5)  # expired
    with BuildLease(storage):
        pass
    _held_by(storage, host="elsewhere", pid=1, renewed_s_ago=5)  # alive on another machine
    with pytest.raises(Pseudo3DError, match="host elsewhere, process 1"):
        BuildLease(storage).acquire()
    assert json.loads(storage.read_bytes(LEASE))["build"] == "other"  # left alone
