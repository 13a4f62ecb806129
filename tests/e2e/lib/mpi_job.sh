# Finding and watching the processes of a test's MPI jobs, shared by the multi-process e2e
# scripts (sourced; not a test itself: ctest runs tests/e2e/*.sh only). Before sourcing, set
#   token   a value unique to this test run; every job is started with TAILOR_E2E_RUN=$token in
#           its environment (mpirun passes it to local ranks), which is how the jobs' processes
#           are found without touching other tests' processes;
#   tailor  the absolute path of the tailor binary.

# PIDs of every live process of this test's jobs (never this shell: it lacks the variable; an
# ended, unreaped process has an empty environ).
job_procs() {
  { grep -lzxF "TAILOR_E2E_RUN=$token" /proc/[0-9]*/environ 2>/dev/null || true; } | cut -d/ -f3
}
# The one-letter state of a process (R, S, T stopped, Z ended but not reaped), or "" when gone.
proc_state() {
  local line state
  read -r line 2>/dev/null < "/proc/$1/stat" || return 0
  read -r state _ <<< "${line##*) }"
  echo "$state"
}
# A process that has ended but is not yet reaped counts as ended.
alive() {
  local state
  state=$(proc_state "$1")
  [ -n "$state" ] && [ "$state" != Z ]
}
# Descendants of a pid, from the parent links in /proc/*/stat (comm may contain spaces: the
# fields after the last ')' are "state ppid ...").
descendants() {
  local d line ppid
  local -A children=()
  for d in /proc/[0-9]*; do
    read -r line 2>/dev/null < "$d/stat" || continue
    read -r _ ppid _ <<< "${line##*) }"
    children[$ppid]+=" ${d#/proc/}"
  done
  local queue=("$1") p c
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    for c in ${children[$p]:-}; do
      echo "$c"
      queue+=("$c")
    done
  done
}
# The process of MPI rank $2 under mpirun $1: the one running the tailor binary if there is one,
# else the topmost process with OMPI_COMM_WORLD_RANK=$2 (a wrapper the launcher started).
rank_pid() {
  local mpirun_pid=$1 rank=$2 p line parent top=""
  local -a hits=()
  for p in $(descendants "$mpirun_pid"); do
    grep -qxzF "OMPI_COMM_WORLD_RANK=$rank" "/proc/$p/environ" 2>/dev/null && hits+=("$p")
  done
  for p in "${hits[@]}"; do
    if [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$(readlink -f "$tailor")" ]; then
      echo "$p"
      return 0
    fi
  done
  for p in "${hits[@]}"; do
    read -r line 2>/dev/null < "/proc/$p/stat" || continue
    read -r _ parent _ <<< "${line##*) }"
    grep -qxzF "OMPI_COMM_WORLD_RANK=$rank" "/proc/$parent/environ" 2>/dev/null || top=$p
  done
  echo "$top"
}
# Waits until pid $1 and every process of the jobs have ended, at the latest at second $2
# (bash SECONDS); returns 1 at the deadline.
wait_all_gone() {
  while alive "$1" || [ -n "$(job_procs)" ]; do
    [ "$SECONDS" -lt "$2" ] || return 1
    sleep 0.2
  done
}
