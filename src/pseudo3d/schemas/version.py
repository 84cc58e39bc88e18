"""Version of the on-disk data contract (shards, sidecars, manifest, card).

History (docs/data-contract.md, "Versions", says how to migrate):

* 1: source ids with 32 bits of SHA-1.
* 2: source ids with 64 bits of SHA-256 and a folder-and-file slug; duplicate ids refused.
* 3: units committed by their own writers (``_commits/`` markers, attempt-named shards).
"""

SCHEMA_VERSION = 3
