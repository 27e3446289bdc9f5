"""The content-addressed wheel cache: keys, the local store, S3, both tiers, upkeep."""
