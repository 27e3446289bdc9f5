"""Packaging hook: the wheel carries ``build-images/`` as ``nativebuild/resources/build-images``.

The build image recipe lives once, at the top of the repository, where the product guide
points. :func:`nativebuild.engine.build_images.recipe_dir` reads it beside the resources when
nativebuild is installed, so ``build_py`` copies it there, byte for byte: the recipe's hash is the same from a
checkout and from an install. MANIFEST.in puts ``build-images/`` in the sdist, so a wheel built
from the sdist has it too. Everything else is configured in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import FileError

RECIPE_SOURCE = Path(__file__).resolve().parent / "build-images"
RECIPE_PACKAGE_PATH = ("nativebuild", "resources", "build-images")
# nativebuild.engine.build_images.RECIPE_FILES: a wheel without one of them is refused when it is built.
RECIPE_FILES = ("Dockerfile", "install-toolchain.sh", "tools-requirements.txt")


class BuildPyWithRecipe(build_py):
    """``build_py`` that also copies ``build-images/`` into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's build-images/
            return
        for source, target in self.recipe_files():
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs: list[str] = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return [*outputs, *(str(target) for _, target in self.recipe_files())]

    def recipe_files(self) -> list[tuple[Path, Path]]:
        missing = [name for name in RECIPE_FILES if not (RECIPE_SOURCE / name).is_file()]
        if missing:
            msg = f"The build image recipe is incomplete: {RECIPE_SOURCE} lacks {missing}."
            raise FileError(msg)
        dest = Path(self.build_lib, *RECIPE_PACKAGE_PATH)
        return [
            (path, dest / path.name)
            for path in sorted(RECIPE_SOURCE.iterdir())
            if path.is_file() and not path.name.startswith(".")
        ]


setup(cmdclass={"build_py": BuildPyWithRecipe})
