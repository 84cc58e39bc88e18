"""A real S3-compatible HTTP server on 127.0.0.1 for the tests: moto's S3 service behind werkzeug.

Run as a script, it prints its port and serves until killed. It serves one request at a time:
moto checks ``If-None-Match: *`` and then stores the object in two steps, so two concurrent
requests could both pass the check; handled one at a time, a conditional write is atomic, as it is
on S3 itself. The server keeps everything in memory.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from typing import Iterator

HOST = "127.0.0.1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "pseudo3d-test", "AWS_SECRET_ACCESS_KEY": "pseudo3d-test",
               "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Start the server in a child process; yields its endpoint URL, then stops it."""
    process = subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the S3 test server did not start (it printed {line!r})")
        yield f"http://{HOST}:{int(line)}"
    finally:
        process.kill()
        process.wait()


def environment(endpoint: str) -> dict[str, str]:
    """What a process needs to reach the server through the standard AWS variables."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


def new_bucket(endpoint: str) -> str:
    """Create a fresh bucket on the server; returns its name."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name


def _serve() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    server = make_server(HOST, 0, DomainDispatcherApplication(create_backend_app), threaded=False)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    os.environ.update(CREDENTIALS)
    _serve()
