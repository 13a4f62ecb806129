// metrics.jsonl writer and the progress line, with injected clocks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "test_support.h"
#include "train/loop/metrics.h"

namespace fs = std::filesystem;

namespace {

std::vector<nlohmann::json> read_records(const fs::path& path) {
  std::istringstream in(tailor::read_file(path));
  std::vector<nlohmann::json> records;
  std::string line;
  while (std::getline(in, line))
    records.push_back(nlohmann::json::parse(line));  // throws if not
  return records;
}

}  // namespace

TEST(MetricsWriter, WritesOneJsonObjectPerLineWithStepAndTime) {
  const fs::path path = tailor::test::fresh_path("metrics_lines") / "metrics.jsonl";
  double now = 1700000000.25;
  {
    tailor::MetricsWriter writer(path, [&] { return now; });
    writer.log(1, {{"loss", 2.5}, {"lr", 3e-4}});
    now += 1.5;
    writer.log(2, {{"loss", 2.25}, {"split", "train"}, {"tokens", 512}});
    // Flushed per line: readable while the writer is still open.
    EXPECT_EQ(read_records(path).size(), 2u);
  }
  const auto records = read_records(path);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["step"], 1);
  EXPECT_DOUBLE_EQ(records[0]["time"].get<double>(), 1700000000.25);
  EXPECT_DOUBLE_EQ(records[0]["loss"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(records[0]["lr"].get<double>(), 3e-4);
  EXPECT_EQ(records[1]["split"], "train");
  EXPECT_EQ(records[1]["tokens"], 512);
  EXPECT_DOUBLE_EQ(records[1]["time"].get<double>(), 1700000001.75);
  // "step" leads each line for people reading the file with head/tail.
  EXPECT_EQ(tailor::read_file(path).rfind("{\"step\":1,\"time\":", 0), 0u);
}

TEST(MetricsWriter, RejectsReservedKeysAndNonObjects) {
  const fs::path path = tailor::test::fresh_path("metrics_reserved") / "metrics.jsonl";
  tailor::MetricsWriter writer(path);
  EXPECT_THROW(writer.log(1, {{"step", 3}}), tailor::Error);
  EXPECT_THROW(writer.log(1, {{"time", 3}}), tailor::Error);
  EXPECT_THROW(writer.log(1, nlohmann::json::array({1, 2})), tailor::Error);
}

TEST(MetricsWriter, ResumeAppendsAndTruncatesReplayedSteps) {
  const fs::path path = tailor::test::fresh_path("metrics_resume") / "metrics.jsonl";
  {
    tailor::MetricsWriter writer(path);
    for (int step = 1; step <= 4; ++step)
      writer.log(step, {{"loss", 1.0 / step}});
  }
  {  // a killed run leaves a torn last line
    std::ofstream out(path, std::ios::app);
    out << "{\"step\":5,\"lo";
  }
  tailor::MetricsWriter resumed(path);
  resumed.truncate_after(2);  // resumed from the checkpoint of step 2
  resumed.log(3, {{"loss", 0.3}});
  const auto records = read_records(path);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["step"], 1);
  EXPECT_EQ(records[1]["step"], 2);
  EXPECT_EQ(records[2]["step"], 3);
  EXPECT_DOUBLE_EQ(records[2]["loss"].get<double>(), 0.3);
}

TEST(MetricsWriter, AppendAfterTornLineStartsOnFreshLine) {
  const fs::path path = tailor::test::fresh_path("metrics_torn") / "metrics.jsonl";
  tailor::write_file_atomic(path, "{\"step\":1}\n{\"step\":2,\"lo");
  tailor::MetricsWriter writer(path);
  writer.log(2, {{"loss", 1.0}});
  const std::string text = tailor::read_file(path);
  EXPECT_NE(text.find("\"lo\n{\"step\":2,"), std::string::npos) << text;
}

TEST(ProgressFormat, Durations) {
  EXPECT_EQ(tailor::format_duration(0), "0:00:00");
  EXPECT_EQ(tailor::format_duration(102), "0:01:42");
  EXPECT_EQ(tailor::format_duration(753.4), "0:12:33");
  EXPECT_EQ(tailor::format_duration(59.6), "0:01:00");
  EXPECT_EQ(tailor::format_duration(27 * 3600 + 5), "27:00:05");
  EXPECT_EQ(tailor::format_duration(-1), "?");
  EXPECT_EQ(tailor::format_duration(std::numeric_limits<double>::infinity()), "?");
}

TEST(ProgressFormat, ThousandsAndLearningRate) {
  EXPECT_EQ(tailor::format_thousands(0), "0");
  EXPECT_EQ(tailor::format_thousands(999), "999");
  EXPECT_EQ(tailor::format_thousands(5120), "5,120");
  EXPECT_EQ(tailor::format_thousands(1234567.4), "1,234,567");
  EXPECT_EQ(tailor::format_thousands(-100000), "-100,000");
  EXPECT_EQ(tailor::format_lr(2.9e-4), "2.9e-4");
  EXPECT_EQ(tailor::format_lr(1e-3), "1e-3");
  EXPECT_EQ(tailor::format_lr(6e-5), "6e-5");
  EXPECT_EQ(tailor::format_lr(0.0), "0");
  EXPECT_EQ(tailor::format_lr(0.5), "5e-1");
}

TEST(ProgressLine, RatesAndEtaFromMovingWindow) {
  double now = 100.0;
  std::ostringstream out;
  tailor::ProgressLine::Options options;
  options.total_steps = 1000;
  options.min_interval_seconds = 10;
  options.window = 4;
  tailor::ProgressLine progress(options, out, [&] { return now; });
  EXPECT_LT(progress.eta_seconds(), 0);  // unknown before any step

  now = 110;                                         // a slow first step (10 s) ...
  EXPECT_TRUE(progress.update(1, 1024, 2.5, 1e-4));  // 10 s since start: due
  for (int step = 2; step <= 5; ++step) {            // ... then 2 s and 1,024 tokens per step
    now += 2;
    EXPECT_FALSE(progress.update(step, 1024, 2.3141, 2.9e-4));
  }
  // The window holds steps 1..5: 4 steps and 4,096 tokens in 8 s; the first step fell out.
  EXPECT_DOUBLE_EQ(progress.tokens_per_second(), 512.0);
  EXPECT_DOUBLE_EQ(progress.eta_seconds(), 995 * 2.0);
  now += 2;
  EXPECT_TRUE(progress.update(6, 1024, 2.3141, 2.9e-4, /*force=*/true));
  // Window steps 2..6 (times 112..120): 2 s/step, 994 steps left.
  const std::string expected_last =
      "step 6/1000 | loss 2.314 | lr 2.9e-4 | 512 tok/s | 0:00:20 elapsed | ETA 0:33:08";
  EXPECT_EQ(progress.format(6, 2.3141, 2.9e-4), expected_last);
  std::istringstream lines(out.str());
  std::string first, second, extra;
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_FALSE(std::getline(lines, extra));
  EXPECT_EQ(first,
            "step 1/1000 | loss 2.500 | lr 1e-4 | 102 tok/s | 0:00:10 elapsed | ETA 2:46:30");
  EXPECT_EQ(second, expected_last);
}

TEST(ProgressLine, ResumedRunCountsFromStartStep) {
  double now = 0.0;
  std::ostringstream out;
  tailor::ProgressLine::Options options;
  options.total_steps = 100;
  options.start_step = 60;
  tailor::ProgressLine progress(options, out, [&] { return now; });
  now = 30;
  progress.update(70, 100, 1.0, 1e-3);  // 10 steps in 30 s
  EXPECT_DOUBLE_EQ(progress.eta_seconds(), 30 * 3.0);
  now = 40;
  progress.update(100, 100, 1.0, 1e-3);
  EXPECT_DOUBLE_EQ(progress.eta_seconds(), 0.0);
}
