#!/usr/bin/env bash
# Bit-exact resume under mpirun at the same world size (issue 10): for ZeRO stage 3 (full
# fine-tuning) and stage 1 (LoRA), with dropout on so that every rank's RNG state must be restored:
#   1. run 2 ranks uninterrupted to max_steps, with sharded checkpoints;
#   2. run a second copy and SIGKILL the whole job (mpirun and both ranks at once, as a lost
#      machine) once its first checkpoint exists;
#   3. resume it on 2 ranks with train.resume=true to the same max_steps;
# and require the final checkpoints of 1 and 3 to be identical: every tensor of every shard (model
# and optimizer state, compared by name, bit for bit), the manifest and trainer_state.json (step,
# data position, every rank's RNG state; all but the recipe hash, which covers train.resume).
#   bash tests/e2e/dist_resume_bit_exact.sh TAILOR_BINARY REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib/dist_job.sh
source "$(dirname "$0")/lib/dist_job.sh" "$@"  # tailor, work, fail, the jobs (lib/mpi_job.sh)
max_steps=24

# The tiny GPT-2 of lib/dist_job.sh (many steps a second on one core), with dropout; global batch
# 8 = micro 2 x accumulation 2 x 2 ranks; warmup + cosine, so the schedule position matters too; a
# checkpoint every 4 steps, all of them kept (the one the resumed run starts from among them).
seed=11 dropout=0.1 schedule=cosine warmup=4 batch="global_batch_size: 8" checkpoint_every=4 \
  keep=100 write_recipe

run_job() {  # LOG TAILOR-RUN-ARGS...: waits for it; fails the test unless it succeeds
  local log=$1
  shift
  start_job "$log" -- "$@"
  job_status
  [ "$rc" -eq 0 ] || fail "tailor run $* failed (see $log)"
}

# Compares two checkpoint directories; prints a summary or the differences and exits 1.
compare() {
  python3 - "$1" "$2" << 'EOF'
import json, os, struct, sys

def tensors(ckpt):
    """name -> (dtype, shape, raw bytes) over every shard_*.safetensors of a checkpoint."""
    found = {}
    for shard in sorted(f for f in os.listdir(ckpt) if f.endswith(".safetensors")):
        with open(os.path.join(ckpt, shard), "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
            data = f.read()
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            found[shard + ":" + name] = (info["dtype"], info["shape"], data[begin:end])
    return found

a_dir, b_dir = sys.argv[1], sys.argv[2]
a, b = tensors(a_dir), tensors(b_dir)
problems = []
if a.keys() != b.keys():
    problems.append("different tensors: only in the first %s, only in the second %s"
                    % (sorted(a.keys() - b.keys())[:5], sorted(b.keys() - a.keys())[:5]))
for name in sorted(a.keys() & b.keys()):
    if a[name] != b[name]:
        problems.append("tensor %s differs" % name)
for doc in ("manifest.json", "trainer_state.json"):
    with open(os.path.join(a_dir, doc)) as fa, open(os.path.join(b_dir, doc)) as fb:
        ja, jb = json.load(fa), json.load(fb)
    # The hash of the resolved recipe that wrote the checkpoint: the resumed run's recipe has
    # train.resume=true, so it differs by design.
    ja.pop("recipe_hash", None)
    jb.pop("recipe_hash", None)
    if ja != jb:
        keys = sorted(k for k in set(ja) | set(jb) if ja.get(k) != jb.get(k))
        problems.append("%s differs in %s" % (doc, keys))
if problems:
    print("\n".join(problems[:20]) + ("\n..." if len(problems) > 20 else ""))
    sys.exit(1)
moments = sum(1 for n in a if ".exp_avg" in n)
print("%d tensors identical (%d optimizer moments), %d bytes; manifest and trainer state identical"
      % (len(a), moments, sum(len(t[2]) for t in a.values())))
EOF
}

check_stage() {  # NAME OVERRIDES...
  local name=$1
  shift
  # Both runs use one output_dir (it is part of the recipe hash kept in trainer_state.json): the
  # uninterrupted run's is moved aside before the second run starts.
  local run=$work/run full=$work/$name.full
  local want
  want=$(printf 'step_%08d' "$max_steps")
  local started=$SECONDS

  rm -rf "$run"
  run_job "$name.full.log" "$@"
  mv "$run" "$full"

  # The copy to kill, in the background; SIGKILL every process of the job at once.
  start_job "$name.killed.log" -- "$@"
  wait_checkpoint "$name (the run to be killed): "
  local -a procs
  mapfile -t procs < <(job_procs)
  kill -9 "${procs[@]}" 2>/dev/null || true
  wait "$job_pid" 2>/dev/null || true
  local latest
  latest=$(basename "$(cat "$run/checkpoints/latest")")
  [ "$latest" != "$want" ] || fail "$name: the run finished before it could be killed"
  # A rank inside fsync when the signal came leaves only once the write completes (seen under
  # CI's load): allow the kill 30 s to take effect rather than checking at once.
  wait_all_gone "$job_pid" $((SECONDS + 30)) ||
    fail "$name: processes of the killed job survived SIGKILL for 30 s"

  run_job "$name.resume.log" train.resume=true "$@"
  grep -q "resumed from.*$latest" "$work/$name.resume.log" ||
    fail "$name: the resumed run does not say it resumed from $latest"
  # The resumed run must have trained (its final state is not the one it started from).
  compare "$run/checkpoints/$latest" "$run/checkpoints/$want" > /dev/null &&
    fail "$name: the final checkpoint equals $latest: nothing was trained after resuming"
  local summary
  summary=$(compare "$full/checkpoints/$want" "$run/checkpoints/$want") ||
    fail "$name: killed at $latest and resumed, $want differs from the uninterrupted run:"$'\n'"$summary"
  echo "$name: killed after $latest, resumed to $want: $summary ($((SECONDS - started)) s)"
}

check_stage zero3 dist.zero_stage=3
check_stage zero1_lora dist.zero_stage=1 lora.enabled=true
echo "2-rank resume after SIGKILL: bit-identical at ZeRO stages 3 and 1"
