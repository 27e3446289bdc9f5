"""The local stand-ins of Lambda's images (tests/images/build-standins), one record per Python:
the runtime, the image names, the stand-in's own glibc (which builds pass as --glibc, since the
stand-ins' glibc is not the runtime's) and the file names its CPython gives extensions."""

from __future__ import annotations

import dataclasses

MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
PLATFORM = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Standin:
    python: str  # "3.13"
    debian: str  # the Debian suite the images are made from
    glibc: str  # the images' own glibc

    @property
    def runtime(self) -> str:
        return f"python{self.python}"

    @property
    def abi(self) -> str:
        """The wheel tag of the interpreter and ABI: cp313."""
        return "cp" + self.python.replace(".", "")

    @property
    def build_image(self) -> str:
        return f"nativebuild-test/build-python{self.python}:{{arch}}"

    @property
    def runtime_image(self) -> str:
        return f"nativebuild-test/runtime-python{self.python}:{{arch}}"

    def runtime_for(self, arch: str) -> str:
        return self.runtime_image.format(arch=arch)

    @property
    def interpreter(self) -> str:
        return f"/var/lang/bin/python{self.python}"

    def extension_suffix(self, arch: str = "x86_64") -> str:
        """What CPython names a compiled module: ``.cpython-313-x86_64-linux-gnu.so``."""
        return f".cpython-{self.abi.removeprefix('cp')}-{MACHINE[arch]}-linux-gnu.so"

    def pyc(self, module: str) -> str:
        return f"{module}.cpython-{self.abi.removeprefix('cp')}.pyc"

    def site_packages(self) -> str:
        return f"lib/python{self.python}/site-packages"

    def build_args(self, arch: str = "x86_64", *, runtime_image: bool = True) -> list[str]:
        """The flags of a build against these stand-ins."""
        args = ["--runtime", self.runtime, "--arch", arch, "--build-image", self.build_image,
                "--glibc", self.glibc]  # fmt: skip
        if runtime_image:
            args += ["--runtime-image", self.runtime_image]
        return args


PY39 = Standin(python="3.9", debian="bullseye", glibc="2.31")
PY313 = Standin(python="3.13", debian="trixie", glibc="2.41")
