#include "train/zero/sharded_model.h"

#include <cstring>
#include <map>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/mapped_pages.h"
#include "common/name_list.h"
#include "common/shape_string.h"
#include "models/core/linear.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/safetensors.h"
#include "models/registry.h"
#include "train/checkpoint/rng_state.h"
#include "train/optim/adamw.h"

namespace tailor {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Copies `count` elements starting at element `begin` of a tensor stored at `data` in `file_dtype`
// into `dst`, then drops the pages read from this process (they stay in the page cache).
void copy_part(const uint8_t* data, at::ScalarType file_dtype, int64_t begin, at::Tensor dst) {
  const int64_t count = dst.numel();
  if (count == 0) return;
  const size_t esize = c10::elementSize(file_dtype);
  const uint8_t* first = data + static_cast<size_t>(begin) * esize;
  const size_t bytes = static_cast<size_t>(count) * esize;
  if (file_dtype == dst.scalar_type() && dst.is_cpu()) {
    std::memcpy(dst.data_ptr(), first, bytes);
  } else {
    const at::Tensor src =
        at::from_blob(const_cast<uint8_t*>(first), {count}, at::TensorOptions().dtype(file_dtype));
    dst.copy_(src);
  }
  drop_mapped_pages(first, bytes);
}

// The checkpoint key of every base parameter, validated as CausalLMImpl::load_hf_state_dict
// validates a whole state dict: no key missing, none unexpected, shapes equal, floating point.
std::map<std::string, std::string> match_checkpoint(const CausalLMImpl& lm,
                                                    const hf::CheckpointReader& reader,
                                                    const std::string& source) {
  const std::string scope = lm.model_type();
  std::map<std::string, std::vector<int64_t>> expected;
  for (const auto& item : lm.named_parameters())
    if (!is_lora_parameter(item.key())) expected.emplace(item.key(), item.value().sizes().vec());
  std::map<std::string, std::string> key_of;
  std::vector<std::string> unexpected, missing;
  for (const auto& key : reader.names()) {
    const std::string name = lm.hf_parameter_name(key);
    if (name.empty()) continue;
    auto it = expected.find(name);
    if (it == expected.end()) {
      unexpected.push_back(key);
      continue;
    }
    if (key_of.count(name))
      throw Error(scope, source + ": " + name + " is given twice (as " + key_of[name] + " and " +
                             key + ")");
    const auto& info = reader.info(key);
    const at::ScalarType type = safetensors::scalar_type_of(info.dtype);
    if (!at::isFloatingType(type))
      throw Error(scope, source + ": " + key + " must be a floating-point tensor");
    if (info.shape != it->second)
      throw Error(scope, source + ": " + key + " has shape " + shape_string(info.shape) +
                             ", the model expects " + shape_string(it->second));
    key_of[name] = key;
  }
  if (!unexpected.empty())
    throw Error(scope, source + ": unexpected key(s) " + list_some(unexpected));
  for (const auto& [name, shape] : expected)
    if (!key_of.count(name)) missing.push_back(name);
  if (!missing.empty()) throw Error(scope, source + ": missing key(s) " + list_some(missing));
  return key_of;
}

}  // namespace

CausalLM build_skeleton(const nlohmann::json& config, const std::string& source,
                        c10::ScalarType dtype, c10::Device device) {
  CausalLM lm = causal_lm_from_config(config, source, /*init_weights=*/false);
  torch::NoGradGuard no_grad;
  std::vector<std::pair<at::Tensor, std::vector<int64_t>>> params;
  for (auto& p : lm->parameters()) {
    params.emplace_back(p, p.sizes().vec());
    p.set_data(at::empty({0}, p.options()));  // frees the float32 allocation
  }
  lm->to(device, dtype);  // buffers as build_model converts them; the parameters are empty here
  for (auto& [p, shape] : params)
    p.set_data(at::empty(shape, p.options().dtype(dtype).device(device)));
  return lm;
}

ShardedModel build_sharded_model(const ModelSection& model, const nlohmann::json& config,
                                 c10::ScalarType dtype, const std::optional<LoraConfig>& lora,
                                 dist::Communicator& comm, const dist::ZeroConfig& zero,
                                 c10::Device device) {
  if (zero.stage != 3) throw Error("zero", "build_sharded_model needs ZeRO stage 3");
  const bool pretrained = model.init == ModelInit::kPretrained;
  const std::string source =
      pretrained ? (model.path / "config.json").string() : "recipe model section";
  ShardedModel out;
  out.model = build_skeleton(config, source, dtype, device);
  CausalLMImpl& lm = *out.model;
  // Where build_model starts drawing the weights (init_weights comes right after construction).
  const at::Tensor init_state = get_torch_cpu_rng_state();

  std::unique_ptr<hf::CheckpointReader> reader;
  std::map<std::string, std::string> key_of;
  if (pretrained) {
    reader = std::make_unique<hf::CheckpointReader>(model.path);
    key_of = match_checkpoint(lm, *reader, model.path.string());
  }
  // LoRA now, for the parameter set and which are trainable; its draws are redone below in the
  // order one process makes them.
  if (lora) out.lora_modules = apply_lora(lm, *lora);

  std::vector<dist::ZeroParam> params;
  for (const auto& item : lm.named_parameters())
    params.push_back({item.key(), item.value(), decays_by_default(item.value()), true});
  out.engine = std::make_unique<dist::ZeroEngine>(comm, std::move(params), lm.hook_groups(), zero);

  set_torch_cpu_rng_state(init_state);
  at::NoGradGuard no_grad;
  // The base: drawn whole and cut (random), or read in parts (pretrained).
  out.engine->fill_parameters([&](const dist::ParameterPart& part) {
    if (is_lora_parameter(part.name)) return;
    if (pretrained) {
      const std::string& key = key_of.at(part.name);
      copy_part(reader->data(key), safetensors::scalar_type_of(reader->info(key).dtype), part.begin,
                part.dst);
      return;
    }
    at::Tensor whole = at::empty(part.shape, part.dst.options().device(at::kCPU));
    lm.init_parameter(part.name, whole);
    part.dst.copy_(whole.reshape({-1}).narrow(0, part.begin, part.dst.numel()));
  });
  // Then LoRA, in module order as apply_lora draws: A kaiming-uniform, B zero.
  if (lora) {
    out.engine->fill_parameters([&](const dist::ParameterPart& part) {
      if (!is_lora_parameter(part.name)) return;
      if (ends_with(part.name, "lora_A.weight")) {
        const at::Tensor a = lora_A_initial(part.shape[0], part.shape[1]).reshape({-1});
        part.dst.copy_(a.narrow(0, part.begin, part.dst.numel()));
      } else {
        part.dst.zero_();
      }
    });
  }
  out.model->set_forward_hooks(
      std::shared_ptr<ForwardHooks>(out.engine.get(), [](ForwardHooks*) {}));  // not owned
  return out;
}

}  // namespace tailor
