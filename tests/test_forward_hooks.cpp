// GPT-2's parameter groups and the order in which it calls ForwardHooks (what ZeRO-3 relies on).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <set>
#include <string>
#include <vector>

#include "models/core/forward_hooks.h"
#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"

namespace tailor {
namespace {

GPT2Config hooks_test_config() {
  GPT2Config c = GPT2Config::preset("gpt2-tiny");
  c.n_layer = 3;
  c.n_embd = 16;
  c.n_head = 2;
  c.vocab_size = 50;
  c.n_positions = 16;
  return c;
}

class Recorder : public ForwardHooks {
 public:
  void enter(int group, const at::Tensor&) override {
    calls.push_back("enter " + std::to_string(group));
  }
  void exit(int group, const at::Tensor&) override {
    calls.push_back("exit " + std::to_string(group));
  }
  std::vector<std::string> calls;
};

TEST(ForwardHooks, GroupsCoverEveryParameterOnce) {
  GPT2LMHead model(hooks_test_config());
  apply_lora(*model, LoraConfig{4, 8, 0.0, false, {"c_attn", "mlp.c_proj"}});
  const auto groups = model->hook_groups();
  ASSERT_EQ(groups.size(), 4u);  // outer + 3 blocks
  std::set<std::string> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (const auto& name : groups[g]) {
      EXPECT_TRUE(seen.insert(name).second) << name << " in two groups";
      if (g == 0) {
        EXPECT_EQ(name.find("transformer.h."), std::string::npos) << name;
      } else {
        EXPECT_EQ(name.rfind("transformer.h." + std::to_string(g - 1) + ".", 0), 0u) << name;
      }
    }
  }
  EXPECT_EQ(seen.size(), model->named_parameters().size());
  EXPECT_TRUE(seen.count("transformer.h.2.attn.c_attn.lora_A.weight"));
}

TEST(ForwardHooks, CalledAroundEachGroupInForwardOrder) {
  GPT2LMHead model(hooks_test_config());
  model->eval();  // no dropout: two forwards must agree
  auto recorder = std::make_shared<Recorder>();
  model->set_forward_hooks(recorder);
  const at::Tensor ids = at::randint(0, 50, {2, 5}, at::kLong);
  const at::Tensor with_hooks = model->forward(ids);
  EXPECT_EQ(recorder->calls, (std::vector<std::string>{"enter 0", "enter 1", "exit 1", "enter 2",
                                                       "exit 2", "enter 3", "exit 3", "exit 0"}));
  model->set_forward_hooks(nullptr);
  recorder->calls.clear();
  EXPECT_TRUE(at::equal(model->forward(ids), with_hooks));  // hooks observe, never change
  EXPECT_TRUE(recorder->calls.empty());
}

}  // namespace
}  // namespace tailor
