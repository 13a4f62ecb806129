// The loop settings every stage's recipe holds under the same names: seed, output_dir, the
// optimizer and schedule sections, and the train section's max_steps, log_every, eval_every,
// checkpoint_every, keep_checkpoints and resume.
#pragma once

#include <string>

#include "train/loop/training_loop.h"
#include "train/recipe/sections.h"

namespace tailor {

template <class Recipe>
LoopConfig recipe_loop_config(const Recipe& r, std::string stage, std::string recipe_hash,
                              RecipeChange recipe_change) {
  LoopConfig c;
  c.name = std::move(stage);
  c.seed = r.seed;
  c.run_dir = r.output_dir;
  c.recipe_hash = std::move(recipe_hash);
  c.recipe_change = recipe_change;
  c.max_steps = r.train.max_steps;
  c.log_every = r.train.log_every;
  c.eval_every = r.train.eval_every;
  c.checkpoint_every = r.train.checkpoint_every;
  c.keep_checkpoints = r.train.keep_checkpoints;
  c.resume = r.train.resume;
  c.grad_clip = r.optimizer.grad_clip;
  c.schedule = schedule_config(r.schedule, r.optimizer, r.train.max_steps);
  return c;
}

}  // namespace tailor
