"""Requirements to exact files: with uv on the host, or with pip in the build image."""
