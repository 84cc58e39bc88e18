#!/usr/bin/env bash
# Building a pseudo3d dataset on an Apache Flink cluster, through Beam's portable Flink runner.
#
# Needs:
# * a Flink cluster of a version Beam 2.77's Flink job server supports (FLINK_VERSION: 1.19,
#   1.20, 2.0, 2.1 or 2.2), and Java 11+ on this machine for the job server. Beam downloads the
#   job server jar from Maven Central unless FLINK_JOB_SERVER_JAR names a local copy
#   (beam-runners-flink-${FLINK_VERSION}-job-server-2.77.0.jar);
# * on every TaskManager host, a Python SDK worker pool from infra/beam/Dockerfile's image, with
#   the shared filesystem mounted at the same path as here (environment_type=EXTERNAL below):
#       docker run -d --network=host -v /shared:/shared pseudo3d-beam:0.1.0 --worker_pool
#   It serves on port 50000 without authentication: keep that port closed to other hosts
#   (on Kubernetes, run it as a sidecar of the TaskManager pod). docs/beam.md has the details;
# * the inputs and DATASET on that shared filesystem: the workers stage shards there, and the
#   publishing step and the dataset-level files run against the same directory.
set -euo pipefail

CORPUS=${CORPUS:?the corpus directory, on the shared filesystem}
DATASET=${DATASET:?the dataset directory, on the shared filesystem}
FLINK_MASTER=${FLINK_MASTER:-localhost:8081}
FLINK_VERSION=${FLINK_VERSION:-1.19}
PARALLELISM=${PARALLELISM:-16}
JAR_OPTION=()
if [[ -n "${FLINK_JOB_SERVER_JAR:-}" ]]; then
    JAR_OPTION=(--beam-option "flink_job_server_jar=${FLINK_JOB_SERVER_JAR}")
fi

pseudo3d build "$CORPUS" --out "$DATASET" --runner beam \
    --beam-option runner=FlinkRunner \
    --beam-option "flink_master=$FLINK_MASTER" \
    --beam-option "flink_version=$FLINK_VERSION" \
    --beam-option "parallelism=$PARALLELISM" \
    --beam-option environment_type=EXTERNAL \
    --beam-option environment_config=localhost:50000 \
    "${JAR_OPTION[@]}"
