#include "trainer/run/model_setup.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "models/io/hf_checkpoint.h"

namespace tailor {

GPT2Config gpt2_config_for(const ModelSection& model) {
  GPT2Config config;
  if (model.init == ModelInit::kPretrained) {
    const auto path = model.path / "config.json";
    config = GPT2Config::from_json(nlohmann::json::parse(read_file(path)), path.string());
  } else {
    config = GPT2Config::preset(model.preset);
    if (model.n_layer > 0) config.n_layer = model.n_layer;
    if (model.n_head > 0) config.n_head = model.n_head;
    if (model.n_embd > 0) config.n_embd = model.n_embd;
    if (model.n_positions > 0) config.n_positions = model.n_positions;
  }
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = model.dropout;
  config.validate("recipe model section");
  return config;
}

GPT2LMHead build_gpt2(const ModelSection& model, const GPT2Config& config, c10::ScalarType dtype) {
  GPT2LMHead gpt2{nullptr};
  if (model.init == ModelInit::kPretrained) {
    gpt2 = GPT2LMHead(config, /*init_weights=*/false);
    gpt2->load_hf_state_dict(hf::load_state_dict(model.path), model.path.string());
  } else {
    gpt2 = GPT2LMHead(config);
  }
  gpt2->to(dtype);
  return gpt2;
}

}  // namespace tailor
