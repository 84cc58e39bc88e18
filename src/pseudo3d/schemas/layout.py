"""Where things are inside a dataset (docs/data-contract.md): names relative to its root."""

SHARD_DIR = "shards"
"""The shards' folder."""
SHARD_PREFIX = "shard-"


def shard_name(index: int) -> str:
    """``shard-NNNNNN``: the stem of shard ``index``'s tar, sidecar parquet and stats JSON."""
    return f"{SHARD_PREFIX}{index:06d}"
