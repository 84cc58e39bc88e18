#!/usr/bin/env bash
# Building a pseudo3d dataset on Google Cloud Dataflow (Runner v2, a custom SDK container).
#
# Needs: the image built from infra/beam/Dockerfile (it installs the gcs extra) pushed where
# Dataflow can pull it (IMAGE), a GCS bucket for Dataflow's own staging and temp files (BUCKET),
# the corpus under a gs:// prefix (CORPUS) and a gs:// prefix for the dataset (DATASET). The
# launching machine and the workers read GCS with application default credentials. Inputs behind
# a URL must be allowed explicitly: the config below adds gs to limits.allowed_protocols.
# Not yet run on Dataflow itself; the DirectRunner writing to an S3-compatible server is tested
# (docs/beam.md, "Where the files live"; docs/storage.md).
set -euo pipefail

CORPUS=${CORPUS:?the corpus, e.g. gs://my-bucket/corpus/}
DATASET=${DATASET:?the dataset, e.g. gs://my-bucket/datasets/vox2}
PROJECT=${PROJECT:?the Google Cloud project}
REGION=${REGION:-europe-west4}
BUCKET=${BUCKET:?a gs:// bucket for Dataflow staging and temp files}
IMAGE=${IMAGE:?the pseudo3d SDK container image, e.g. REGION-docker.pkg.dev/PROJECT/repo/pseudo3d-beam:0.1.0}
CONFIG=${CONFIG:-$(mktemp --suffix=.yaml)}
[ -s "$CONFIG" ] || printf 'limits:\n  allowed_protocols: [file, gs]\n' > "$CONFIG"
MAX_WORKERS=${MAX_WORKERS:-20}

# CPU-only workers (the mediapipe and flame-fit backends). One SDK process per vCPU is Dataflow's
# default for Python; each runs the tracking of one video at a time in an isolated process.
pseudo3d build "$CORPUS" --out "$DATASET" --config "$CONFIG" --runner beam \
    --beam-option runner=DataflowRunner \
    --beam-option "project=$PROJECT" \
    --beam-option "region=$REGION" \
    --beam-option "temp_location=$BUCKET/tmp" \
    --beam-option "staging_location=$BUCKET/staging" \
    --beam-option "sdk_container_image=$IMAGE" \
    --beam-option sdk_location=container \
    --beam-option machine_type=n2-standard-8 \
    --beam-option "max_num_workers=$MAX_WORKERS" \
    --beam-option experiments=use_runner_v2 \
    --beam-option job_name=pseudo3d-build

# GPU workers for --backend deca: one NVIDIA L4 per worker, the driver installed by Dataflow, and
# one SDK process per worker so the model loads once per GPU. The FLAME and DECA files must be at
# the same local path on every worker (they are never baked into the image).
#   pseudo3d build "$CORPUS" --out "$DATASET" --config "$CONFIG" --runner beam --backend deca \
#       --flame-model /shared/assets/generic_model.pkl --deca-checkpoint /shared/assets/deca_model.tar \
#       --beam-option runner=DataflowRunner --beam-option "project=$PROJECT" --beam-option "region=$REGION" \
#       --beam-option "temp_location=$BUCKET/tmp" --beam-option "sdk_container_image=$IMAGE" \
#       --beam-option sdk_location=container --beam-option machine_type=g2-standard-8 \
#       --beam-option "dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver" \
#       --beam-option experiments=no_use_multiple_sdk_containers --beam-option experiments=use_runner_v2
