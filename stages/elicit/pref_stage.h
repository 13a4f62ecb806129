// PReF (elicit.method: pref; seed report 004), as a stage:
//   1. simulated training users (Dirichlet mixtures of reward.oracles, signs flipped) each answer
//      pref.answers_per_user of the training pairs; the users x pairs matrix of their answers is
//      factorised at rank J by iterated low-rank imputation (judges/elicit/pref_factorization.h);
//   2. a linear head phi = W^T x on the standardised frozen backbone features is fitted to the
//      factorisation's Phi by ridge regression;
//   3. Lambda and W are refined jointly by L2-regularised logistic MLE: these are the training
//      loop's steps (train.*, optimizer.*), with its progress line, metrics and checkpoints;
//      the dev metrics are the training users' answers on held-out prompts' pairs.
// Then phi is exported as a multi-reward model with a J-wide hidden layer (one head: the mean
// training user), and every new user (`users`, plus pref.new_users simulated ones) answers
// elicit.questions questions per selector (active | random), scored by AUC on held-out pairs.
#pragma once

#include "stages/elicit/elicit_recipe.h"
#include "train/loop/training_loop.h"

namespace tailor {

void run_pref_stage(const ElicitRecipe& recipe, LoopConfig config);

}  // namespace tailor
