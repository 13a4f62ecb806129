# shellcheck shell=bash
# The common start of the e2e scripts (sourced; not a test itself: ctest runs tests/e2e/*.sh
# only). A script begins with
#   source "$(dirname "$0")/lib/e2e.sh" "$@"
# passing its own arguments, TAILOR_BINARY REPO_ROOT. This turns on bash's strict mode, changes to
# the repository root (recipes name paths relative to it) and sets
#   tailor  the absolute path of the tailor binary;
#   work    a fresh temporary directory, removed at exit by `cleanup` (a script may redefine
#           cleanup; the EXIT trap calls whatever it is then);
#   fail    fail MESSAGE...: prints "FAIL: MESSAGE" to stderr and exits 1.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: bash $0 TAILOR_BINARY REPO_ROOT" >&2
  exit 2
fi
tailor=$(realpath "$1")
cd "$2"
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# kill_at_checkpoint OUTPUT_DIR LOG TAILOR-RUN-ARGS...: `tailor run ARGS output_dir=OUTPUT_DIR` in
# the background (output to LOG), SIGKILLed as soon as OUTPUT_DIR/checkpoints/latest exists;
# sets latest to what that file holds then. Fails if no checkpoint appears within 30 s.
kill_at_checkpoint() {
  local dir=$1 log=$2 tries pid
  shift 2
  "$tailor" run "$@" output_dir="$dir" > "$log" 2>&1 &
  pid=$!
  for ((tries = 0; tries < 3000; tries++)); do
    [ -f "$dir/checkpoints/latest" ] && break
    sleep 0.01
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ -f "$dir/checkpoints/latest" ] || { cat "$log"; fail "no checkpoint in $dir within 30 s"; }
  latest=$(cat "$dir/checkpoints/latest")
}
# safetensors_header FILE: prints FILE's JSON header (the little-endian u64 at the start is its
# length). Read into a file, not piped into `grep -q`: under pipefail, grep exiting at its first
# match would SIGPIPE a writer still writing and fail the check at random.
safetensors_header() {
  local n
  n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
  [[ $n =~ ^[0-9]+$ ]] || fail "$1: no safetensors header"
  dd if="$1" iflag=skip_bytes,count_bytes skip=8 count="$n" status=none
}
