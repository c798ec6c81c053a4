#!/usr/bin/env bash
# SmpRobot build entry point: installs what is missing, builds, and runs the demo, the tests or the
# benchmarks (estop, serial, tracking, calibration). Usage: ./build.sh [build|demo [ARGS...]|test|bench [NAME...]]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
config=Release

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the project needs at run time: OpenCV's runtime links GTK 3; SkiaSharp (design previews)
# links fontconfig and draws its labels with DejaVu. PostgreSQL's server: the tests start a private cluster of it
# (the shared record store of a clinic, --store postgres://…); nothing is skipped without it.
ensure_packages() {
  local missing=()
  for pkg in libgtk-3-0 libfontconfig1 fonts-dejavu-core postgresql; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "build.sh: installing Debian packages: ${missing[*]}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v dotnet >/dev/null || { echo "build.sh: the .NET SDK (dotnet) is required: https://learn.microsoft.com/dotnet/core/install/linux-debian" >&2; exit 1; }
}

build() {
  ensure_packages
  local out
  out="$(mktemp)"
  # Quiet on success; the whole build output on failure.
  if ! dotnet build SmpRobot.sln -c "$config" -nologo -v quiet >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    echo "build.sh: build failed" >&2
    exit 1
  fi
  rm -f "$out"
}

cmd="${1:-build}"
[ $# -gt 0 ] && shift
case "$cmd" in
  build)
    build ;;
  demo)
    build
    exec "$root/smp" demo "$@" ;;
  test)
    build
    log="$(mktemp)"
    set +e
    # --blame: should the test host ever crash, the runner names the tests that were running (CI shows only the output).
    dotnet test SmpRobot.sln -c "$config" --no-build -nologo --blame --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    # One plain closing line that any CI reader understands.
    # The runner's summary ("Passed: N", "Failed: N", "Skipped: N"; absent when zero).
    count() { { grep -Eo "^ *$1: +[0-9]+" "$log" || true; } | awk '{s+=$2} END {print s+0}'; }
    passed=$(count Passed)
    failed=$(count Failed)
    skipped=$(count Skipped)
    rm -f "$log"
    echo "tests: $passed passed, $failed failed, $skipped skipped"
    exit "$status" ;;
  bench)
    build
    exec dotnet "bench/SmpRobot.Bench/bin/$config/net10.0/smp-bench.dll" "$@" ;;
  *)
    echo "usage: ./build.sh [build|demo [ARGS...]|test|bench [NAME...]]" >&2
    exit 2 ;;
esac
