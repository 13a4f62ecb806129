// The reward model (models/heads/reward_model.h) and its Hugging Face sequence-classification
// export (models/io/reward_export.h): pooling at the last real token against unpadded runs and a
// float64 head product written here, export/import round trips (full, LoRA merged, LoRA + PEFT
// adapter), the files' contents, load errors, and `tailor score` on a reward-model directory.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"
#include "models/heads/reward_model.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/pretrained.h"
#include "models/io/reward_export.h"
#include "models/io/safetensors.h"
#include "models/tokenizer/byte_level.h"
#include "test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace tailor {
namespace {

GPT2Config reward_gpt2_config(int64_t vocab = 61) {
  GPT2Config config;
  config.vocab_size = vocab;
  config.n_positions = 16;
  config.n_embd = 16;
  config.n_layer = 2;
  config.n_head = 2;
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0;
  return config;
}

RewardModel tiny_reward_model(int64_t num_labels, uint64_t seed, int64_t vocab = 61) {
  torch::manual_seed(seed);
  RewardModel model(GPT2LMHead(reward_gpt2_config(vocab)).ptr(), num_labels);
  model->init_head(0.5);  // larger than HF's 0.02 so rewards differ clearly between inputs
  model->eval();
  return model;
}

// A right-padded batch: row b has lens[b] real tokens from a fixed pattern, then `pad` ids.
struct PaddedBatch {
  at::Tensor ids, mask;
};
PaddedBatch padded_batch(const std::vector<int64_t>& lens, int64_t T, int64_t vocab,
                         const std::function<int64_t(int64_t, int64_t)>& pad) {
  const int64_t B = static_cast<int64_t>(lens.size());
  at::Tensor ids = at::zeros({B, T}, at::kLong), mask = at::zeros({B, T}, at::kLong);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const bool real = t < lens[b];
      ids[b][t] = real ? (7 * b + 13 * t + 3) % vocab : pad(b, t);
      mask[b][t] = real ? 1 : 0;
    }
  return {ids, mask};
}

PaddedBatch eval_batch() {
  return padded_batch({6, 2, 9, 4}, 9, 61, [](int64_t b, int64_t t) { return (5 * b + t) % 61; });
}

// A byte-level tokenizer without merges (id = byte, <|endoftext|> = 256) in `dir`.
fs::path byte_tokenizer(const fs::path& dir) {
  fs::create_directories(dir);
  json vocab = json::object();
  for (int b = 0; b < 256; ++b)
    vocab[byte_level::bytes_to_symbols(std::string(1, char(b)))] = b;
  vocab["<|endoftext|>"] = 256;
  write_file_atomic(dir / "vocab.json", vocab.dump());
  write_file_atomic(dir / "merges.txt", "#version: 0.2\n");
  return dir;
}

// Sets every LoRA factor to N(0, 0.3) so the adapters change the rewards.
void randomize_reward_lora(RewardModel& model, uint64_t seed) {
  torch::manual_seed(seed);
  at::NoGradGuard no_grad;
  for (auto& item : lora_parameters(*model))
    item.value().normal_(0, 0.3);
}

}  // namespace

// The reward of each row of a right-padded batch equals (1) the reward of that row run alone,
// without padding, and (2) score.weight @ hidden[row, len - 1] computed in float64 here.
TEST(RewardModel, PoolsTheLastRealToken) {
  RewardModel model = tiny_reward_model(3, 1);
  const std::vector<int64_t> lens{5, 1, 8, 3};
  const auto batch =
      padded_batch(lens, 8, 61, [](int64_t b, int64_t t) { return (11 * b + 2 * t) % 61; });
  at::NoGradGuard no_grad;
  const at::Tensor rewards = model->forward(batch.ids, batch.mask);
  ASSERT_EQ(rewards.sizes(), (std::vector<int64_t>{4, 3}));
  const at::Tensor hidden = model->backbone->hidden_states(batch.ids, batch.mask).to(at::kDouble);
  const at::Tensor W = model->score->weight.to(at::kDouble);  // [K, C]
  for (int64_t b = 0; b < 4; ++b) {
    const at::Tensor alone = model->forward(batch.ids[b].slice(0, 0, lens[b]).unsqueeze(0));
    EXPECT_LE(test::max_abs_diff(alone[0], rewards[b]), 1e-5) << "row " << b;
    for (int64_t k = 0; k < 3; ++k) {
      double manual = 0, at_end = 0;
      for (int64_t c = 0; c < 16; ++c) {
        manual += W[k][c].item<double>() * hidden[b][lens[b] - 1][c].item<double>();
        at_end += W[k][c].item<double>() * hidden[b][7][c].item<double>();
      }
      EXPECT_NEAR(rewards[b][k].item<double>(), manual, 1e-5) << "row " << b << " label " << k;
      // The last position holds padding for short rows and gives another value there.
      if (lens[b] < 8) {
        EXPECT_GT(std::abs(at_end - manual), 1e-3) << "row " << b;
      }
    }
  }
  const at::Tensor pooled = model->pooled(batch.ids, batch.mask);
  ASSERT_EQ(pooled.sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(test::max_abs_diff(pooled[1], hidden[1][0]), 0.0);
}

TEST(RewardModel, PaddingContentDoesNotChangeTheReward) {
  RewardModel model = tiny_reward_model(2, 2);
  const std::vector<int64_t> lens{3, 7, 1};
  const auto zeros = padded_batch(lens, 7, 61, [](int64_t, int64_t) { return 0; });
  const auto other =
      padded_batch(lens, 7, 61, [](int64_t b, int64_t t) { return (29 * b + 17 * t + 5) % 61; });
  ASSERT_FALSE(zeros.ids.equal(other.ids));
  at::NoGradGuard no_grad;
  EXPECT_LE(test::max_abs_diff(model->forward(zeros.ids, zeros.mask),
                               model->forward(other.ids, other.mask)),
            1e-6);
}

TEST(RewardModel, RejectsLeftPaddingAndEmptyRows) {
  RewardModel model = tiny_reward_model(1, 3);
  const at::Tensor ids = at::ones({2, 4}, at::kLong);
  const at::Tensor left = torch::tensor({0, 1, 1, 1, 1, 1, 1, 1}, at::kLong).view({2, 4});
  const at::Tensor empty = torch::tensor({1, 1, 0, 0, 0, 0, 0, 0}, at::kLong).view({2, 4});
  EXPECT_NE(test::error_of([&] { model->forward(ids, left); }).find("right padding"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { model->forward(ids, empty); }).find("at least one real token"),
            std::string::npos);
}

TEST(RewardModel, ParametersReadLikeHfSequenceClassification) {
  RewardModel model = tiny_reward_model(2, 4);
  std::set<std::string> names;
  for (const auto& item : model->named_parameters())
    names.insert(item.key());
  EXPECT_TRUE(names.count("transformer.wte.weight"));
  EXPECT_TRUE(names.count("transformer.h.1.mlp.c_proj.bias"));
  EXPECT_TRUE(names.count("score.weight"));
  for (const auto& name : names)
    EXPECT_TRUE(name.rfind("transformer.", 0) == 0 || name == "score.weight") << name;
  EXPECT_EQ(model->score->weight.sizes(), (std::vector<int64_t>{2, 16}));

  apply_reward_lora(model, LoraConfig{4, 8.0, 0.0, false, {"c_attn"}});
  const auto lora = lora_parameters(*model);
  EXPECT_NE(lora.find("transformer.h.0.attn.c_attn.lora_A.weight"), nullptr);
  EXPECT_TRUE(model->score->weight.requires_grad());  // the head trains with LoRA (PEFT SEQ_CLS)
  EXPECT_FALSE(model->backbone->token_embedding_weight().requires_grad());
}

// Full model: save -> load gives bitwise-identical rewards; the files are what transformers'
// GPT2ForSequenceClassification expects.
TEST(RewardExport, FullModelRoundTripAndFiles) {
  const fs::path dir = test::fresh_dir("reward_model_full");
  RewardModel model = tiny_reward_model(3, 5);
  const auto batch = eval_batch();
  at::NoGradGuard no_grad;
  const at::Tensor before = model->forward(batch.ids, batch.mask);

  const fs::path tokenizer = byte_tokenizer(dir / "tok");
  save_reward_model(dir / "rm", model, /*merged=*/false, tokenizer);
  RewardModel loaded = load_reward_model(dir / "rm");
  loaded->eval();
  EXPECT_EQ(loaded->num_labels(), 3);
  EXPECT_TRUE(loaded->forward(batch.ids, batch.mask).equal(before));

  const json config = json::parse(read_file(dir / "rm" / "config.json"));
  EXPECT_EQ(config["architectures"], json({"GPT2ForSequenceClassification"}));
  EXPECT_EQ(config["num_labels"], 3);
  EXPECT_EQ(config["id2label"], json({{"0", "LABEL_0"}, {"1", "LABEL_1"}, {"2", "LABEL_2"}}));
  EXPECT_EQ(config["label2id"], json({{"LABEL_0", 0}, {"LABEL_1", 1}, {"LABEL_2", 2}}));
  EXPECT_EQ(config["pad_token_id"], 50256);
  EXPECT_EQ(config["n_embd"], 16);
  EXPECT_TRUE(is_reward_model_dir(dir / "rm"));

  // Exactly HF's key set, spelled out here: no lm_head, score.weight [K, C].
  std::set<std::string> expected{"transformer.wte.weight", "transformer.wpe.weight",
                                 "transformer.ln_f.weight", "transformer.ln_f.bias",
                                 "score.weight"};
  for (int i = 0; i < 2; ++i)
    for (const char* p : {"ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"})
      for (const char* w : {"weight", "bias"})
        expected.insert("transformer.h." + std::to_string(i) + "." + p + "." + w);
  const TensorMap tensors = safetensors::load(dir / "rm" / "model.safetensors");
  std::set<std::string> keys;
  for (const auto& [name, t] : tensors)
    keys.insert(name);
  EXPECT_EQ(keys, expected);
  EXPECT_EQ(tensors.at("score.weight").sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_FALSE(fs::exists(dir / "rm" / "adapter"));
  for (const char* file : {"vocab.json", "merges.txt", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(dir / "rm" / file)) << file;

  // A causal-LM directory is not a reward-model directory.
  save_pretrained(dir / "lm", *model->backbone);
  EXPECT_FALSE(is_reward_model_dir(dir / "lm"));
  EXPECT_FALSE(is_reward_model_dir(dir / "nothing"));
  fs::remove_all(dir);
}

// LoRA merged into the written base: the reloaded model has no LoRA and scores as the trained one
// (up to float rounding of the merged weights); the trained model is not changed.
TEST(RewardExport, LoraMergedRoundTrip) {
  const fs::path dir = test::fresh_dir("reward_model_merged");
  RewardModel model = tiny_reward_model(2, 6);
  apply_reward_lora(model, LoraConfig{4, 8.0, 0.0, false, {"c_attn", "c_fc"}});
  randomize_reward_lora(model, 7);
  const auto batch = eval_batch();
  at::NoGradGuard no_grad;
  const at::Tensor before = model->forward(batch.ids, batch.mask);
  set_adapters_enabled(*model, false);
  const at::Tensor base_only = model->forward(batch.ids, batch.mask);
  set_adapters_enabled(*model, true);
  ASSERT_GT(test::max_abs_diff(before, base_only), 1e-2);  // the adapters matter

  save_reward_model(dir / "rm", model, /*merged=*/true);
  EXPECT_FALSE(lora_merged(*model));
  EXPECT_TRUE(model->forward(batch.ids, batch.mask).equal(before));  // model left as it was
  EXPECT_FALSE(fs::exists(dir / "rm" / "adapter"));
  RewardModel loaded = load_reward_model(dir / "rm");
  loaded->eval();
  EXPECT_FALSE(has_lora(*loaded));
  EXPECT_LE(test::max_abs_diff(loaded->forward(batch.ids, batch.mask), before), 1e-5);
  fs::remove_all(dir);
}

// LoRA kept as a PEFT SEQ_CLS adapter with the head in modules_to_save: the reloaded model
// (base + adapter) scores bitwise as the trained one, and the adapter's head is the one used.
TEST(RewardExport, LoraAdapterRoundTripAndFiles) {
  const fs::path dir = test::fresh_dir("reward_model_adapter");
  RewardModel model = tiny_reward_model(2, 8);
  apply_reward_lora(model, LoraConfig{2, 4.0, 0.0, false, {"c_attn", "attn.c_proj"}});
  randomize_reward_lora(model, 9);
  const auto batch = eval_batch();
  at::NoGradGuard no_grad;
  const at::Tensor before = model->forward(batch.ids, batch.mask);
  save_reward_model(dir / "rm", model, /*merged=*/false);

  const json adapter_config =
      json::parse(read_file(dir / "rm" / "adapter" / "adapter_config.json"));
  EXPECT_EQ(adapter_config["task_type"], "SEQ_CLS");
  EXPECT_EQ(adapter_config["modules_to_save"], json({"score"}));
  EXPECT_EQ(adapter_config["r"], 2);
  EXPECT_EQ(adapter_config["lora_alpha"], 4);
  EXPECT_EQ(adapter_config["target_modules"], json({"c_attn", "attn.c_proj"}));
  EXPECT_EQ(adapter_config["base_model_name_or_path"], "..");
  const TensorMap adapter = safetensors::load(dir / "rm" / "adapter" / "adapter_model.safetensors");
  std::set<std::string> keys, expected{"base_model.model.score.weight"};
  for (const auto& [name, t] : adapter)
    keys.insert(name);
  for (int i = 0; i < 2; ++i)
    for (const char* m : {"attn.c_attn", "attn.c_proj"})
      for (const char* f : {"lora_A", "lora_B"})
        expected.insert("base_model.model.transformer.h." + std::to_string(i) + "." + m + "." + f +
                        ".weight");
  EXPECT_EQ(keys, expected);
  EXPECT_TRUE(adapter.at("base_model.model.score.weight").equal(model->score->weight));

  // The head comes from the adapter: zero the base directory's copy first.
  TensorMap base = safetensors::load(dir / "rm" / "model.safetensors");
  base["score.weight"] = at::zeros_like(base["score.weight"]);
  safetensors::save(dir / "rm" / "model.safetensors", base);
  RewardModel loaded = load_reward_model(dir / "rm");  // finds rm/adapter
  loaded->eval();
  EXPECT_TRUE(has_lora(*loaded));
  EXPECT_TRUE(loaded->forward(batch.ids, batch.mask).equal(before));
  // Adapter named explicitly, from elsewhere.
  fs::rename(dir / "rm" / "adapter", dir / "elsewhere");
  RewardModel explicit_adapter = load_reward_model(dir / "rm", dir / "elsewhere");
  explicit_adapter->eval();
  EXPECT_TRUE(explicit_adapter->forward(batch.ids, batch.mask).equal(before));
  fs::remove_all(dir);
}

// Directories as transformers or other tools write them: backbone keys without the
// "transformer." prefix, num_labels without id2label.
TEST(RewardExport, LoadsHfWrittenVariants) {
  const fs::path dir = test::fresh_dir("reward_model_variants");
  RewardModel model = tiny_reward_model(2, 10);
  const auto batch = eval_batch();
  at::NoGradGuard no_grad;
  const at::Tensor before = model->forward(batch.ids, batch.mask);
  save_reward_model(dir / "rm", model, false);
  TensorMap stripped;
  for (const auto& [name, t] : safetensors::load(dir / "rm" / "model.safetensors"))
    stripped[name.rfind("transformer.", 0) == 0 ? name.substr(12) : name] = t;
  hf::save_state_dict(dir / "rm", stripped, /*max_shard_bytes=*/20'000);  // sharded too
  json config = json::parse(read_file(dir / "rm" / "config.json"));
  config.erase("id2label");
  config.erase("label2id");
  write_file_atomic(dir / "rm" / "config.json", config.dump());
  RewardModel loaded = load_reward_model(dir / "rm");
  loaded->eval();
  EXPECT_EQ(loaded->num_labels(), 2);
  EXPECT_TRUE(loaded->forward(batch.ids, batch.mask).equal(before));
  fs::remove_all(dir);
}

TEST(RewardExport, LoadErrorsNameTheFile) {
  const fs::path dir = test::fresh_dir("reward_model_errors");
  RewardModel model = tiny_reward_model(2, 11);
  save_reward_model(dir / "rm", model, false);
  const fs::path weights = dir / "rm" / "model.safetensors";

  // num_labels 3 in config.json, score.weight [2, 16] in the file.
  json config = json::parse(read_file(dir / "rm" / "config.json"));
  config["id2label"]["2"] = "LABEL_2";
  write_file_atomic(dir / "rm" / "config.json", config.dump());
  std::string error = test::error_of([&] { load_reward_model(dir / "rm"); });
  EXPECT_NE(error.find(weights.string()), std::string::npos) << error;
  EXPECT_NE(error.find("score.weight has shape [2, 16], expected [3, 16]"), std::string::npos)
      << error;

  // No head at all (a causal-LM checkpoint labelled as a classifier).
  TensorMap tensors = safetensors::load(weights);
  tensors.erase("score.weight");
  safetensors::save(weights, tensors);
  error = test::error_of([&] { load_reward_model(dir / "rm"); });
  EXPECT_NE(error.find(weights.string() + ": missing score.weight"), std::string::npos) << error;
  fs::remove_all(dir);
}

// A wiring test of `tailor score` on a reward-model directory: rewards of prompt+response
// (tokenized separately, ids concatenated), of text, and chosen/rejected pairs with their margin,
// against the model run here on ids spelled out by hand (a byte-level tokenizer without merges:
// id = byte). The reward's own maths is RewardModel.PoolsTheLastRealToken's float64 check.
TEST(RewardScoreCli, WiresPromptResponseAndPairIdsToTheRewardModel) {
  const fs::path dir = test::fresh_dir("reward_model_cli");
  const fs::path tok = byte_tokenizer(dir / "tok");

  RewardModel model = tiny_reward_model(2, 12, /*vocab=*/257);
  save_reward_model(dir / "rm", model, false, tok);
  write_file_atomic(dir / "in.jsonl",
                    "{\"prompt\": \"ab\", \"response\": \"cd\"}\n"
                    "\n"
                    "{\"text\": \"hi!\"}\n"
                    "{\"prompt\": \"Q\", \"chosen\": \"yes\", \"rejected\": \"no\"}\n");
  ASSERT_EQ(
      cli::score_command({"tailor score", "--model", (dir / "rm").string(), "--input",
                          (dir / "in.jsonl").string(), "--output", (dir / "out.jsonl").string()}),
      0);
  std::vector<json> lines;
  std::istringstream out(read_file(dir / "out.jsonl"));
  for (std::string line; std::getline(out, line);)
    lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 3u);

  at::NoGradGuard no_grad;
  auto reward = [&](const std::vector<int64_t>& ids) {
    const at::Tensor r = model->forward(torch::tensor(ids, at::kLong).unsqueeze(0))[0];
    return std::vector<double>{r[0].item<double>(), r[1].item<double>()};
  };
  auto expect_near = [](const json& got, const std::vector<double>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t k = 0; k < want.size(); ++k)
      EXPECT_NEAR(got[k].get<double>(), want[k], 1e-6) << what << " label " << k;
  };
  expect_near(lines[0]["reward"], reward({'a', 'b', 'c', 'd'}), "prompt+response");
  expect_near(lines[1]["reward"], reward({'h', 'i', '!'}), "text");
  const auto chosen = reward({'Q', 'y', 'e', 's'}), rejected = reward({'Q', 'n', 'o'});
  expect_near(lines[2]["chosen"], chosen, "chosen");
  expect_near(lines[2]["rejected"], rejected, "rejected");
  EXPECT_NEAR(lines[2]["margin"].get<double>(), chosen[0] - rejected[0], 1e-6);

  // A causal-LM directory still gets NLL scores; --reward on it is refused.
  save_pretrained(dir / "lm", *model->backbone);
  write_file_atomic(dir / "in.jsonl", "{\"prompt\": \"ab\", \"response\": \"cd\"}\n");
  ASSERT_EQ(cli::score_command({"tailor score", "--model", (dir / "lm").string(), "--tokenizer",
                                tok.string(), "--input", (dir / "in.jsonl").string(), "--output",
                                (dir / "lm.jsonl").string()}),
            0);
  const json first =
      json::parse(read_file(dir / "lm.jsonl").substr(0, read_file(dir / "lm.jsonl").find('\n')));
  EXPECT_EQ(first["tokens"], 4);
  EXPECT_TRUE(first.contains("nll"));
  EXPECT_FALSE(first.contains("reward"));
  const std::string error = test::error_of([&] {
    cli::score_command({"tailor score", "--reward", "--model", (dir / "lm").string(), "--input",
                        (dir / "in.jsonl").string()});
  });
  EXPECT_NE(error.find("--reward needs"), std::string::npos) << error;
  fs::remove_all(dir);
}

}  // namespace tailor
