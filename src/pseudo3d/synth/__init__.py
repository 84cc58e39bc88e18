"""Synthetic talking-head corpora with ground truth, for demos and tests.

Entry point: :func:`pseudo3d.synth.corpus.make_corpus` (the truth sidecar format is documented
there). The pieces: :mod:`.speech` (speech-like audio and the matching mouth opening),
:mod:`.face` (the animated astronaut portrait), :mod:`.scene` (head motion, camera, backdrop),
:mod:`.talking` (one video and its truth), :mod:`.mp4` (reproducible H.264 + AAC files) and
:mod:`.bad` (inputs a build must survive).
"""
