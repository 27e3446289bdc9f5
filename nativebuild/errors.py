"""Every error nativebuild raises, under one base, each with its own exit code.

Messages say what failed, why, and what to do next. Only the CLI prints them.
"""

from __future__ import annotations


class NativebuildError(Exception):
    """Base of all nativebuild errors. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(NativebuildError):
    """Bad settings: unknown runtime or architecture, unknown config key, bad value."""

    exit_code = 2


class RequirementsFileNotFoundError(NativebuildError):
    exit_code = 3


class RequirementSyntaxError(NativebuildError):
    """A requirements file (or lock file) line that cannot be parsed."""

    exit_code = 4


class ResolutionError(NativebuildError):
    """The requirements cannot be resolved: unknown package, conflicting pins, no file fits."""

    exit_code = 5


class CompileError(NativebuildError):
    """Building an sdist into a wheel failed inside the build container."""

    exit_code = 6


class DockerUnavailableError(NativebuildError):
    """The container engine does not answer."""

    exit_code = 7


class ImageNotFoundError(NativebuildError):
    exit_code = 8


class CacheError(NativebuildError):
    exit_code = 9


class DownloadError(NativebuildError):
    """A file could not be fetched from the package index, or its hash did not match."""

    exit_code = 10


class ArchiveError(NativebuildError):
    """The archive cannot be assembled: unsafe paths in a wheel, conflicting files, I/O failure."""

    exit_code = 11


class ContainerError(NativebuildError):
    """A container could not be created or run for a reason other than a compile failure."""

    exit_code = 12


class CacheOnlyError(NativebuildError):
    """--cache-only, and some packages are not in the cache: they would need compiling."""

    exit_code = 13


class EmulationUnavailableError(NativebuildError):
    """The engine cannot run containers of the target's architecture (no binfmt/QEMU)."""

    exit_code = 15


class AbiError(NativebuildError):
    """A binary of the archive cannot load in the runtime: wrong machine, a Mach-O or PE file,
    a symbol version newer than the runtime has, or a shared library found nowhere."""

    exit_code = 14


class PublishError(NativebuildError):
    """AWS refused or failed a publish: access denied, function not found, a failed update."""

    exit_code = 16


class AwsSetupError(PublishError):
    """No AWS credentials or no region: nothing can be published."""

    exit_code = 17


class ArchiveTooLargeError(PublishError):
    """An archive over Lambda's limits: unzipped size, or zipped size with no --s3 to go via."""

    exit_code = 18


class ArchitectureMismatchError(PublishError):
    """The archive's architecture is not the function's."""

    exit_code = 19


class TemplateError(NativebuildError):
    """A SAM template that cannot be built as written: not found or not parseable, a resource
    whose code folder is missing, an intrinsic function that cannot be decided before deploying,
    a layer whose BuildMethod nativebuild does not run (makefile)."""

    exit_code = 20
