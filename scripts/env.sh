# Sourced by the scripts: shared environment.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Build outputs live outside the clone and are reused across clones and runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/metered-realtime/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install the Rust toolchain (rustup, Rust >= 1.95)" >&2; exit 1; }
