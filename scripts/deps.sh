#!/usr/bin/env bash
# scripts/deps.sh - make sure the Debian packages tcomp needs are installed.
#
# Run it (./scripts/deps.sh) or source it (the other scripts do).  Silent when
# everything is already there; otherwise one `apt-get update` and one
# `apt-get install -y` of the missing packages (through sudo when not root).
# When sourced it also exports CMAKE_GENERATOR=Ninja (if ninja is installed and
# no generator was chosen), which the CMake presets rely on.

TCOMP_DEB_PACKAGES=(
  cmake g++ ninja-build
  libeigen3-dev libxsimd-dev catch2 libbenchmark-dev nlohmann-json3-dev libdnnl-dev
  clang-14 libclang-rt-14-dev
)

tcomp_ensure_deps() {
  if ! command -v dpkg >/dev/null 2>&1; then
    echo "deps.sh: no dpkg here (not Debian/Ubuntu?); make sure these are installed:" >&2
    echo "deps.sh:   ${TCOMP_DEB_PACKAGES[*]}" >&2
    return 0
  fi

  local missing=() pkg
  for pkg in "${TCOMP_DEB_PACKAGES[@]}"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0

  echo "deps.sh: installing missing packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "deps.sh: not root and no sudo; please install: ${missing[*]}" >&2
      return 1
    fi
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" || return 1
}

# The presets name no generator: use Ninja when available, but never switch
# the generator of an existing build directory (CMake refuses that).
# Usage: tcomp_pick_generator <build-dir>
TCOMP_USER_GENERATOR="${TCOMP_USER_GENERATOR-${CMAKE_GENERATOR:-}}"
tcomp_pick_generator() {
  local cache="$1/CMakeCache.txt"
  if [ -n "$TCOMP_USER_GENERATOR" ]; then
    export CMAKE_GENERATOR="$TCOMP_USER_GENERATOR"
  else
    unset CMAKE_GENERATOR
  fi
  if [ -f "$cache" ]; then
    local existing
    existing=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "$cache")
    if [ -n "$existing" ]; then
      export CMAKE_GENERATOR="$existing"
      return 0
    fi
  fi
  if [ -z "${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null 2>&1; then
    export CMAKE_GENERATOR=Ninja
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  # Executed, not sourced.
  set -euo pipefail
  tcomp_ensure_deps
else
  tcomp_ensure_deps || { echo "deps.sh: dependency installation failed" >&2; return 1; }
fi
