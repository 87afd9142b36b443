#!/usr/bin/env bash
# Set-up for maskattn on Debian 12, run by the Makefile before every build:
# installs what is missing, then configures the given CMake presets.
#
#   tools/setup.sh [PRESET...]      presets from CMakePresets.json; default: dev
#
# Idempotent and cheap when nothing changed: one dpkg-query call decides
# whether apt is needed at all, and a preset is configured only when its build
# directory has no build.ninja yet (after that, Ninja re-runs CMake itself when
# a CMakeLists.txt changes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

# ---- apt packages -------------------------------------------------------------
# The compiler and build tools, then the libraries the README justifies.
apt_packages=(
  build-essential cmake ninja-build pkg-config
  libfmt-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
)

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

# ---- Python virtual environment (.venv) ------------------------------------------
# Nothing yet: there is no Python code. The issue that adds the Python module
# creates .venv here with the python3 on PATH (only when .venv is missing or
# its requirements changed) and pip-installs into it.

# ---- CMake presets ------------------------------------------------------------
presets=("$@")
((${#presets[@]} > 0)) || presets=(dev)
for preset in "${presets[@]}"; do
  if [[ ! -f build/$preset/build.ninja ]]; then
    cmake --preset "$preset"
  fi
done
