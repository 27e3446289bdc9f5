"""The package index from the host: pip's settings, the simple API, downloads, uv."""
