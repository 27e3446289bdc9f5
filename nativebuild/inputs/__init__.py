"""What a function needs: requirements files, ``pyproject.toml``, lock files, local projects."""
