#!/usr/bin/env bash
# vla_ros2 workspace runner: creates/reuses the project venv, builds the seven packages with
# colcon and runs the job.  Works on a fresh Debian/Ubuntu machine with Python 3.11 and no ROS.
#
#   ./run.sh demo [ARGS]   the simulated end-to-end demo (`vla demo`)
#   ./run.sh test [ARGS]   the test suite (pytest ARGS, e.g. `-m slow`, `-k gate`)
#   ./run.sh vla ARGS      any `vla` command (vla --help lists them)
#   ./run.sh bench NAME    a script from benchmarks/ (e.g. `./run.sh bench bench_sim_step.py`)
#   ./run.sh setup         only install and build
#   ./run.sh shell         a shell with the workspace sourced
#
# Environment: VLA_VENV (default .venv), PYTHON (default python3.11 or python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${VLA_VENV:-$ROOT/.venv}"
cd "$ROOT"

log() { printf '\033[1m[vla]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[vla] error:\033[0m %s\n' "$*" >&2; exit 1; }

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    die "Python 3.11 is required (the ROS 2 wheels are built for CPython 3.11); install python3.11 or set PYTHON=/path/to/python3.11"
}

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing system packages: $*"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    else
        die "missing system packages: $* (install them with: sudo apt-get install $*)"
    fi
}

ensure_system_deps() {
    # MuJoCo renders offscreen on the CPU through EGL (Mesa llvmpipe).
    local missing=()
    ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || missing+=(libegl1)
    ldconfig -p 2>/dev/null | grep -q 'libOpenGL.so.0' || missing+=(libopengl0)
    ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || ls /usr/lib/*/dri/llvmpipe_dri.so >/dev/null 2>&1 ||
        ls /usr/lib/*/libgallium* >/dev/null 2>&1 || missing+=(libgl1-mesa-dri)
    if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

ensure_venv() {
    local py stamp want
    if [ ! -x "$VENV/bin/python" ]; then
        py="$(find_python)"
        log "creating the project venv in $VENV"
        if ! "$py" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            apt_install python3-venv
            "$py" -m venv "$VENV"
        fi
    fi
    stamp="$VENV/.requirements.sha256"
    want="$(sha256sum requirements.txt | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing pinned dependencies (requirements.txt; ~2 GB, a few minutes the first time)"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -r requirements.txt
        echo "$want" >"$stamp"
    fi
}

build_workspace() {
    log "colcon build"
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    colcon --log-base "$ROOT/log" build --symlink-install --base-paths "$ROOT" \
        --build-base "$ROOT/build" --install-base "$ROOT/install" \
        --event-handlers console_cohesion- summary- status- terminal_title- >"$ROOT/log/colcon_build.txt" 2>&1 \
        || { tail -n 40 "$ROOT/log/colcon_build.txt" >&2; die "colcon build failed (full log: log/colcon_build.txt)"; }
}

activate_workspace() {
    # The venv's ROS message packages live in the ament index under $VIRTUAL_ENV.
    export AMENT_PREFIX_PATH="$VENV"
    export MUJOCO_GL="${MUJOCO_GL:-egl}"
    set +u
    # shellcheck disable=SC1091
    source "$ROOT/install/setup.bash"
    set -u
}

setup() {
    mkdir -p "$ROOT/log"
    ensure_system_deps
    ensure_venv
    build_workspace
    activate_workspace
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) setup ;;
    test)
        setup
        log "pytest $*"
        rc=0
        python -m pytest "$@" || rc=$?
        # pytest exits 5 when a selection collects no test; that is not a failure of the suite.
        [ "$rc" = 5 ] && { log "no test selected"; rc=0; }
        exit "$rc" ;;
    demo) setup; exec python -m vla_bringup.cli demo "$@" ;;
    vla) setup; exec python -m vla_bringup.cli "$@" ;;
    bench)
        [ $# -ge 1 ] || die "usage: ./run.sh bench SCRIPT [ARGS] (scripts: $(ls benchmarks | tr '\n' ' '))"
        setup; script="$1"; shift; exec python "benchmarks/$script" "$@" ;;
    shell) setup; exec bash --noprofile --norc -i ;;
    help|-h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (try ./run.sh help)" ;;
esac
