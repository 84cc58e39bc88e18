"""Version of the on-disk data contract (shards, sidecars, manifest, card)."""

SCHEMA_VERSION = 1
