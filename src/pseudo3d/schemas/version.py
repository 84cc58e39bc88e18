"""Version of the on-disk data contract (shards, commit markers, index tables, card).

History (docs/data-contract.md, "Versions", says how to migrate):

* 1: source ids with 32 bits of SHA-1.
* 2: source ids with 64 bits of SHA-256 and a folder-and-file slug; duplicate ids refused.
* 3: units committed by their own writers (``_commits/`` markers, attempt-named shards).
* 4: the index as Parquet datasets, one part per unit writer (``manifest/``, ``sources/``,
  ``failures/``); no shard sidecars; the card from the markers; ``--retry-failed`` commits a unit
  again instead of adding rows elsewhere.
"""

SCHEMA_VERSION = 4
