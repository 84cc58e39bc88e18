"""Fixture generators for tests, benchmarks and demos: small synthetic assets in the licensed
files' formats, made by project code from no licensed data.

* :mod:`.flame_assets`: a FLAME model (``generic_model.pkl`` / FLAME 2023 layout) and landmark
  embeddings whose head is MediaPipe's canonical face;
* :mod:`.deca_assets`: a ``deca_model.tar`` with random, calibrated weights;
* :mod:`.syncnet_assets`: a ``syncnet_v2.model`` with random, calibrated weights;
* :mod:`.vocaset`, :mod:`.beat`: datasets in VOCASET's and BEAT's layouts for finetuning and
  evaluation.

None of this is needed to build or train; the product's user-facing synthetic corpus (``pseudo3d
synth``, with ``--bad-corpus``) is :mod:`pseudo3d.synth`.
"""
