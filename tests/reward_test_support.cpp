#include "reward_test_support.h"

#include <fstream>

namespace tailor::testing {

RewardRecipe tiny_reward_recipe(const std::string& variant, const std::filesystem::path& out,
                                const std::vector<std::string>& extra) {
  std::vector<std::string> overrides = {"output_dir=" + out.string(),
                                        "data.synthetic_prompts=60",
                                        "model.n_layer=1",
                                        "model.n_embd=16",
                                        "model.n_head=2",
                                        "vae.latent_dim=8",
                                        "vae.hidden_dim=16",
                                        "vae.survey_size=12",
                                        "vae.context_size=4",
                                        "schedule.warmup_steps=1"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_reward_recipe("recipes/rm_synth_" + variant + ".yaml", overrides);
}

}  // namespace tailor::testing
