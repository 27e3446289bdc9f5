"""What to do about an ABI finding: the advice texts of :mod:`nativebuild.abi.check`.

The advice depends on where the binary came from: a wheel downloaded from an index (pin,
another variant, build from source), a wheel nativebuild compiled (the build image, vendoring),
or the user's own source tree.
"""

from __future__ import annotations

from nativebuild.abi.elf import Binary, ElfFacts
from nativebuild.abi.runtime_facts import library_hints
from nativebuild.targets import Target

__all__ = ["foreign_fix", "missing_fix", "version_fix", "wrong_machine_fix"]


def _name(binary: Binary) -> str:
    return (binary.package or "the package").split(" ")[0]


def _compiled(binary: Binary) -> bool:
    """Whether its wheel was built from an sdist (a plain ``linux_*`` tag, no manylinux)."""
    return binary.wheel is not None and "-linux_" in binary.wheel


def foreign_fix(binary: Binary) -> str:
    return (
        f"Install {_name(binary)} for Linux: let nativebuild resolve it instead of copying "
        "site-packages from another machine."
        if binary.package
        else "It is in your source directory: remove it, and let nativebuild install the "
        "package for Linux."
    )


def wrong_machine_fix(binary: Binary, elf: ElfFacts, target: Target) -> str:
    wanted = target.arch.machine
    name = _name(binary)
    if _compiled(binary):
        return (
            f"It was compiled for the wrong machine: check that {target.arch} build containers "
            "really run as such (nativebuild doctor), then rebuild it."
        )
    if binary.package is not None:
        return (
            f"Its wheel ({binary.wheel or 'as installed'}) is tagged for {wanted} but holds "
            f"{elf.machine} code: pin another version of {name}, or build it from source "
            f"(--no-binary {name} in the requirements file)."
        )
    return f"It is in your source directory: rebuild it for {wanted}, or remove it."


def missing_fix(binary: Binary, name: str) -> str:
    hint = library_hints().get(name)
    if _compiled(binary):
        advice = (
            f"{_name(binary)} was built against {name} of the build image: vendor it into the "
            "archive's lib/ (repair), or link it statically."
        )
    elif binary.package is not None:
        advice = (
            f"The wheel expects {name} on the system (manylinux allows some such libraries; "
            f"Lambda lacks this one): ship {name} in the archive's lib/ or a layer's lib/, or "
            f"use another version or variant of {_name(binary)} that bundles it."
        )
    else:
        advice = (
            f"Ship {name} in lib/ of the archive (/var/task/lib) or of a layer (/opt/lib), "
            "both on LD_LIBRARY_PATH."
        )
    return f"{hint} {advice}" if hint else advice


def version_fix(binary: Binary, shipped: Binary | None) -> str:
    name = _name(binary)
    if shipped is not None:
        return f"Ship the {shipped.path} that {name} was built against, or rebuild {name}."
    if _compiled(binary):
        return (
            f"{name} was compiled in an image newer than the runtime: build it in the runtime's "
            "own build image (the default --build-image), whose glibc and libstdc++ match."
        )
    if binary.package is not None:
        return (
            f"Its wheel ({binary.wheel or 'as installed'}) needs more than its manylinux tag "
            f"claims, or than the runtime has: pin another version of {name}, use an older "
            f"manylinux variant of its wheel if it has one, or build it from source "
            f"(--no-binary {name} in the requirements file)."
        )
    return "It is in your source directory: rebuild it in the runtime's build image."
