#!/usr/bin/env bash
# Launches `tailor` (or any program) on N ranks with OpenMPI's mpirun, on this machine or on the
# hosts of a hostfile, with the environment every rank needs. Prints the exact command it runs.
#
#   launch/mpirun.sh [options] [--] TAILOR-ARGS...
#
#   launch/mpirun.sh -n 4 -- run recipes/quickstart_dist.yaml          # 4 ranks on this machine
#   launch/mpirun.sh --hostfile hosts --gpus-per-node 8 -- run recipe.yaml   # 1 rank per GPU
#   launch/mpirun.sh -n 2 --dry-run -- run recipes/quickstart_dist.yaml  # print, do not run
#   launch/mpirun.sh -n 2 --exec hostname                               # any program
#
# Options:
#   -n, --np RANKS         number of ranks. Default: nodes x GPUs per node with --gpus-per-node,
#                          else the number of GPUs nvidia-smi lists on this machine, else an error.
#   --hostfile FILE        OpenMPI hostfile ("node01 slots=8" per line; launch/hostfile.example).
#                          Without one, every rank runs on this machine.
#   --gpus-per-node G      one rank per GPU: G ranks on every node (--map-by ppr:G:node).
#                          Rank r uses GPU local_rank (tailor picks it; do not set
#                          CUDA_VISIBLE_DEVICES per rank).
#   --exec PROGRAM         run PROGRAM instead of build/tailor of this repository.
#   --threads T            OMP_NUM_THREADS per rank. Default: $OMP_NUM_THREADS when set, else
#                          physical cores of this machine / ranks per node (at least 1).
#   --mpirun-arg ARG       pass ARG to mpirun as is (repeatable), e.g.
#                          --mpirun-arg --mca --mpirun-arg btl_tcp_if_include --mpirun-arg eth0
#   --dry-run              print the command and exit.
#   -h, --help             this text.
#
# What it adds to mpirun, and why:
#   --allow-run-as-root    only when running as root (containers); OpenMPI refuses root otherwise.
#   --oversubscribe        only without a hostfile and with more ranks than physical cores here:
#                          OpenMPI gives a host one slot per core and refuses more ranks.
#   --bind-to none         always: each rank runs OMP_NUM_THREADS threads, and OpenMPI's default
#                          (bind each rank to one core when np <= 2) would squeeze them onto it.
#   -x NAME                exports OMP_NUM_THREADS, PATH, LD_LIBRARY_PATH, CUDA_VISIBLE_DEVICES
#                          (when set) and every NCCL_* and TAILOR_* variable to all ranks: remote
#                          ranks start with the remote login environment, not this one.
# Relative paths in TAILOR-ARGS (recipes, output_dir) are relative to the current directory; on
# a cluster it must exist on every node at the same path (a shared filesystem), as must the
# program.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
me="launch/mpirun.sh"

die() {
  echo "$me: error: $*" >&2
  exit 2
}
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}
need_count() {  # name value: a positive integer
  [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] ||
    die "$1 expects a positive whole number, got '$2'"
}
need_value() {  # option remaining-argument-count
  [ "$2" -ge 2 ] || die "$1 needs a value"
}

ranks="" hostfile="" gpus_per_node="" program="" threads="" dry_run=0
extra_mpirun=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n | --np | -np)
      need_value "$1" $#
      need_count "$1" "$2"
      ranks=$2
      shift 2
      ;;
    --hostfile)
      need_value "$1" $#
      hostfile=$2
      shift 2
      ;;
    --gpus-per-node)
      need_value "$1" $#
      need_count "$1" "$2"
      gpus_per_node=$2
      shift 2
      ;;
    --exec)
      need_value "$1" $#
      program=$2
      shift 2
      ;;
    --threads)
      need_value "$1" $#
      need_count "$1" "$2"
      threads=$2
      shift 2
      ;;
    --mpirun-arg)
      need_value "$1" $#
      extra_mpirun+=("$2")
      shift 2
      ;;
    --dry-run)
      dry_run=1
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      break
      ;;
    -*) die "unknown option '$1' (see --help; arguments for the program go after --)" ;;
    *) break ;;
  esac
done

# Physical cores this process may run on (what OpenMPI counts as slots), from the allowed CPU
# list and the sysfs topology; nproc when the topology is not readable.
physical_cores() {
  local list range lo hi c seen=""
  list=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status 2>/dev/null || true)
  if [ -z "$list" ] || [ ! -r /sys/devices/system/cpu/cpu0/topology/core_id ]; then
    nproc
    return
  fi
  for range in ${list//,/ }; do
    lo=${range%-*}
    hi=${range#*-}
    for ((c = lo; c <= hi; c++)); do
      seen+="$(cat /sys/devices/system/cpu/cpu$c/topology/physical_package_id 2>/dev/null || echo 0):"
      seen+="$(cat /sys/devices/system/cpu/cpu$c/topology/core_id 2>/dev/null || echo "$c")"$'\n'
    done
  done
  printf '%s' "$seen" | sort -u | grep -c .
}

nodes=1
if [ -n "$hostfile" ]; then
  [ -e "$hostfile" ] || die "hostfile '$hostfile' not found (format: launch/hostfile.example)"
  [ -f "$hostfile" ] && [ -r "$hostfile" ] || die "hostfile '$hostfile' is not a readable file"
  hostfile=$(cd "$(dirname "$hostfile")" && pwd)/$(basename "$hostfile")
  nodes=$(sed -e 's/#.*//' "$hostfile" | awk 'NF {print $1}' | sort -u | grep -c . || true)
  [ "$nodes" -ge 1 ] || die "hostfile '$hostfile' names no host"
fi

gpus_here=0
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus_here=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi

if [ -z "$ranks" ]; then
  if [ -n "$gpus_per_node" ]; then
    ranks=$((nodes * gpus_per_node))
  elif [ -z "$hostfile" ] && [ "$gpus_here" -ge 1 ]; then
    ranks=$gpus_here
  else
    die "give the number of ranks with -n RANKS (or --gpus-per-node G for one rank per GPU)"
  fi
fi
if [ -n "$gpus_per_node" ]; then
  [ "$ranks" -le $((nodes * gpus_per_node)) ] ||
    die "-n $ranks is more than $nodes node(s) x $gpus_per_node GPUs per node; one rank per GPU"
  if [ -z "$hostfile" ] && [ "$gpus_here" -lt "$gpus_per_node" ]; then
    echo "$me: warning: --gpus-per-node $gpus_per_node but nvidia-smi lists $gpus_here GPU(s) here" >&2
  fi
fi

cores=$(physical_cores)
if [ -n "$gpus_per_node" ]; then
  ranks_per_node=$gpus_per_node
else
  ranks_per_node=$(((ranks + nodes - 1) / nodes))
fi
if [ -z "$threads" ]; then
  if [ -n "${OMP_NUM_THREADS:-}" ]; then
    need_count OMP_NUM_THREADS "$OMP_NUM_THREADS"
    threads=$OMP_NUM_THREADS
  else
    threads=$((cores / ranks_per_node))
    [ "$threads" -ge 1 ] || threads=1
  fi
fi

if [ -z "$program" ]; then
  program=$repo/build/tailor
  if [ ! -x "$program" ] && [ "$dry_run" -eq 0 ]; then
    die "$program not found: build it with 'TAILOR_SKIP_DEPS=1 bash launch/setup.sh' (or give --exec PROGRAM)"
  fi
elif [[ "$program" != */* ]]; then
  resolved=$(command -v "$program" || true)
  [ -n "$resolved" ] || [ "$dry_run" -eq 1 ] || die "program '$program' not found on PATH"
  program=${resolved:-$program}
else
  [ -x "$program" ] || [ "$dry_run" -eq 1 ] || die "program '$program' is not an executable file"
  program=$(cd "$(dirname "$program")" && pwd)/$(basename "$program")
fi

# mpirun by name, not by absolute path: OpenMPI treats an absolute path as an implicit --prefix
# for the remote daemons (and rejects "/" when found as /bin/mpirun).
if ! command -v mpirun >/dev/null 2>&1; then
  [ "$dry_run" -eq 1 ] || die "mpirun not found: install OpenMPI (apt install openmpi-bin) or put it on PATH"
  echo "$me: warning: mpirun not found (apt install openmpi-bin); printing the command anyway" >&2
elif ! mpirun --version 2>&1 | grep -q "Open MPI"; then
  die "$(command -v mpirun) is not OpenMPI's mpirun (this wrapper uses OpenMPI options); install openmpi-bin"
fi

cmd=(mpirun -np "$ranks")
[ "$(id -u)" -eq 0 ] && cmd+=(--allow-run-as-root)
if [ -n "$hostfile" ]; then
  cmd+=(--hostfile "$hostfile")
elif [ "$ranks" -gt "$cores" ]; then
  cmd+=(--oversubscribe)
fi
[ -n "$gpus_per_node" ] && cmd+=(--map-by "ppr:$gpus_per_node:node")
cmd+=(--bind-to none)
cmd+=(-x "OMP_NUM_THREADS=$threads" -x PATH)
[ -n "${LD_LIBRARY_PATH+set}" ] && cmd+=(-x LD_LIBRARY_PATH)
[ -n "${CUDA_VISIBLE_DEVICES+set}" ] && cmd+=(-x CUDA_VISIBLE_DEVICES)
while IFS= read -r name; do
  cmd+=(-x "$name")
done < <(compgen -e | grep -E '^(NCCL|TAILOR)_' | sort || true)
cmd+=("${extra_mpirun[@]}" "$program" "$@")

# The command, shell-quoted so it can be pasted: on stdout for --dry-run, else on stderr.
quoted=$(printf ' %q' "${cmd[@]}")
if [ "$dry_run" -eq 1 ]; then
  echo "${quoted# }"
  exit 0
fi
echo "+${quoted}" >&2
exec "${cmd[@]}"
