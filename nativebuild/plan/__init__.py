"""What to do with each pinned distribution: cached, download, or compile (pure)."""
