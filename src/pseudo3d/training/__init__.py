"""Training speech-driven 3D face animation on pseudo3d datasets: shard loading, audio features,
models, losses and metrics, the pretrain/finetune loop, evaluation and export.

Needs PyTorch (``pip install 'pseudo3d[train]'``)."""
