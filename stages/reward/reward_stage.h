// The reward stage (stage: reward): a Bradley–Terry reward model or the VPL conditional VAE
// reward model trained on the preferences of several users, with uniform or adaptive continual
// sampling, optional per-user gradient surgery (PCGrad, MGDA) and a contrastive latent loss.
// Per-user held-out accuracy, AUC and loss go to metrics.jsonl every train.eval_every steps;
// summary.json holds the final numbers and when the run converged (read by `tailor sweep`), for
// VPL whether the context embeddings were read from the cache (`context_cache`: hit | computed),
// for adaptive sampling the examples drawn per user in each phase (`adaptive_phases`);
// eval_predictions.jsonl the rewards of every held-out pair; export/ the trained model.
// A step is train.batch_size x train.grad_accum pairs (gradient accumulation, the same loss and
// gradient as one batch), in train.precision (fp32, bf16 with fp32 master copies, or
// bf16_autocast); train.checkpoint_every writes checkpoints that train.resume continues from,
// bit-identically to an uninterrupted run.
#pragma once

#include "stages/reward/reward_recipe.h"

namespace tailor {

// Trains, evaluates and exports as the recipe says (train/loop/training_loop.h runs the steps);
// errors throw. One process.
void run_reward_stage(const RewardRecipe& recipe);

}  // namespace tailor
