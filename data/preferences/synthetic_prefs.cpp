#include "data/preferences/synthetic_prefs.h"

#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/preferences/simulated_users.h"

namespace tailor::data {
namespace fs = std::filesystem;

namespace {

constexpr int kSentences = 5;

// A topic: the question (no trailing format request) and short informative sentences, written
// lowercase-first without final punctuation so openers, casing and markers compose cleanly.
struct Topic {
  const char* question;
  std::vector<const char*> facts;
};

const std::vector<Topic>& topics() {
  static const std::vector<Topic> bank = {
      {"How do I care for a cactus?",
       {"water it only when soil is dry", "give it several hours of bright light",
        "use a pot with a drainage hole", "plant it in sandy cactus soil",
        "water far less during the winter", "keep it away from frost"}},
      {"Explain how tides work.",
       {"the Moon pulls the oceans toward it", "the Earth spins under two water bulges",
        "most coasts see two high tides daily", "the Sun adds a smaller pull",
        "spring tides come at full moon", "neap tides happen at half moon"}},
      {"How do I make good coffee at home?",
       {"grind the beans just before brewing", "use water just below boiling",
        "weigh the coffee and the water", "store beans in an airtight jar",
        "clean the brewer every week", "try a medium grind for drip brewers"}},
      {"How can I sleep better?",
       {"go to bed at one time", "keep the bedroom dark and cool",
        "avoid screens an hour before bed", "skip caffeine after noon",
        "get some daylight in the morning", "keep naps short and early"}},
      {"How do vaccines work?",
       {"they train the immune system safely", "they show the body a harmless antigen",
        "the body makes antibodies in response", "memory cells remember the germ",
        "a later infection is fought off faster", "some need booster doses"}},
      {"How do I start running?",
       {"begin with short run and walk intervals", "wear shoes that fit your feet",
        "run at a pace that allows talking", "add distance slowly each week",
        "rest at least one day between runs", "warm up with a brisk walk"}},
      {"Why is the sky blue?",
       {"air scatters blue light more than red", "this effect is called Rayleigh scattering",
        "short wavelengths bounce around the sky", "sunsets look red from longer paths",
        "our eyes are more sensitive to blue", "scattered light comes from everywhere"}},
      {"How do I save money each month?",
       {"track every expense for a month", "set a budget for each category",
        "move savings out on payday", "cancel subscriptions you do not use",
        "cook at home more often", "compare prices before big purchases"}},
      {"How does a rainbow form?",
       {"sunlight enters raindrops and bends", "each color bends by a different angle",
        "light reflects inside each drop", "the Sun must be behind you",
        "red appears on the outer edge", "a second bow can appear above it"}},
      {"How do I learn a new language?",
       {"practice a little every single day", "learn the most common words first",
        "speak with native speakers early", "listen to podcasts in the language",
        "use spaced repetition flashcards", "read simple stories for practice"}},
      {"How do bees make honey?",
       {"bees collect nectar from flowers", "they store nectar in a honey stomach",
        "enzymes break the sugars down", "bees fan the nectar to dry it",
        "they seal finished honey with wax", "a hive stores honey for winter"}},
      {"How do I keep bread fresh?",
       {"store it in a cloth bag", "keep it at room temperature",
        "freeze slices you cannot eat soon", "avoid the fridge because it dries bread",
        "toast stale slices to revive them", "keep the cut side face down"}},
      {"How does a refrigerator keep food cold?",
       {"a refrigerant absorbs heat inside", "the compressor squeezes the warm gas",
        "coils at the back release the heat", "the gas expands and cools again",
        "a thermostat switches the compressor on", "good door seals keep the cold in"}},
      {"How do I write a good resume?",
       {"keep it to one or two pages", "list results with numbers", "tailor it to each job posting",
        "put recent experience first", "use a clean and simple layout", "check spelling twice"}},
      {"How do plants make food?",
       {"leaves capture sunlight with chlorophyll", "they take carbon dioxide from the air",
        "roots bring up water from the soil", "light energy turns these into sugar",
        "oxygen is released as a byproduct", "this process is called photosynthesis"}},
      {"How do I clean a cast iron pan?",
       {"rinse it with hot water after cooking", "scrub stuck food with coarse salt",
        "dry it fully on the stove", "rub in a thin layer of oil", "avoid soaking it in water",
        "reseason it if rust appears"}},
      {"How do earthquakes happen?",
       {"tectonic plates slowly move past each other", "stress builds up along faults",
        "the rock suddenly slips and releases energy", "seismic waves spread from the focus",
        "seismometers record the shaking", "most quakes happen near plate edges"}},
      {"How do I train a puppy?",
       {"reward good behavior right away", "keep training sessions short",
        "use the same words for each command", "take it outside often to avoid accidents",
        "socialize it with people and dogs", "be patient and consistent"}},
      {"How does the internet send data?",
       {"data is split into small packets", "each packet carries an address",
        "routers forward packets toward the target", "packets may take different paths",
        "the receiver puts packets back in order", "lost packets are sent again"}},
      {"How do I grow tomatoes?",
       {"plant them in full sun", "water deeply at the base",
        "support the stems with stakes or cages", "feed them with compost",
        "pinch off suckers for bigger fruit", "pick them when fully colored"}},
      {"How do airplanes stay in the air?",
       {"wings are shaped to create lift", "air flows faster over the curved top",
        "engines provide forward thrust", "lift must balance the weight",
        "flaps add lift at low speed", "the tail keeps the plane stable"}},
      {"How do I reduce stress?",
       {"take slow deep breaths", "go for a short walk outside", "write down what worries you",
        "talk with a friend you trust", "limit news and social media",
        "keep a regular sleep schedule"}},
      {"How do volcanoes erupt?",
       {"magma rises because it is light", "gas bubbles build pressure inside",
        "the pressure breaks through the crust", "lava flows out of the vent",
        "ash can rise very high", "many volcanoes sit near plate edges"}},
      {"How do I improve my handwriting?",
       {"hold the pen with a relaxed grip", "slow down while you write",
        "practice letter shapes daily", "keep letters the same height",
        "use lined paper for practice", "copy a model alphabet"}},
      {"How does the heart pump blood?",
       {"the heart has four chambers", "the right side feeds the lungs",
        "the left side feeds the body", "valves keep blood flowing one way",
        "an electrical signal starts each beat", "the lungs add oxygen to the blood"}},
      {"How do I prepare for a job interview?",
       {"research the company beforehand", "practice answers to common questions",
        "prepare a few questions to ask", "arrive a little early", "bring copies of your resume",
        "send a thank you note afterward"}},
      {"How do solar panels make electricity?",
       {"panels are made of silicon cells", "sunlight knocks electrons loose",
        "the cell pushes electrons into a current", "an inverter turns it into household power",
        "panels work best facing the Sun", "clean panels produce more power"}},
      {"How do I cook rice?",
       {"rinse the rice until water is clear", "use two cups of water per cup",
        "boil it then lower the heat", "cover the pot while it simmers", "let it rest ten minutes",
        "fluff it with a fork"}},
      {"Why do leaves change color in autumn?",
       {"trees stop making chlorophyll", "green fades and yellow pigments show",
        "cool nights help red pigments form", "shorter days trigger the change",
        "the tree pulls nutrients back from leaves", "dry sunny weather gives bright colors"}},
      {"How do I keep my laptop running fast?",
       {"uninstall programs you never use", "keep the system updated",
        "limit apps that start at boot", "leave some free disk space", "restart it now and then",
        "scan for malware regularly"}},
      {"How do fish breathe underwater?",
       {"fish use gills to breathe", "water flows over the gill filaments",
        "oxygen passes from water into blood", "carbon dioxide moves out the other way",
        "some fish swim to keep water flowing", "gills have a huge surface area"}},
      {"How do I paint a room?",
       {"move furniture and cover the floor", "fill holes and sand the walls",
        "tape edges you want to keep clean", "apply a coat of primer first",
        "paint with a roller in long strokes", "let each coat dry fully"}},
      {"How does a compass work?",
       {"the needle is a small magnet", "Earth has a magnetic field",
        "the needle lines up with the field", "one end points toward magnetic north",
        "nearby metal can disturb the reading", "magnetic north differs from true north"}},
      {"How do I stay focused while studying?",
       {"study in short timed blocks", "put your phone in another room",
        "set one clear goal per session", "take short breaks between blocks",
        "study at the same place each day", "test yourself instead of rereading"}},
      {"How do clouds form?",
       {"warm air rises and cools", "cool air holds less water vapor",
        "vapor condenses on tiny dust particles", "billions of droplets make a cloud",
        "clouds form faster near mountains", "heavy droplets fall as rain"}},
      {"How do I change a flat tire?",
       {"park on flat ground away from traffic", "loosen the lug nuts before jacking",
        "raise the car with the jack", "swap the flat for the spare",
        "tighten the nuts in a star pattern", "check the spare tire pressure"}},
      {"How does recycling help the planet?",
       {"it saves raw materials", "it uses less energy than new production",
        "it keeps waste out of landfills", "it cuts greenhouse gas emissions",
        "clean items are easier to recycle", "aluminum can be recycled many times"}},
      {"How do I make a paper airplane?",
       {"fold a sheet in half lengthwise", "fold the top corners to the center",
        "fold the new edges inward again", "fold the plane in half", "fold down each wing",
        "throw it gently and level"}},
      {"How do owls hunt at night?",
       {"owls have very large eyes", "their ears sit at different heights",
        "they can locate prey by sound alone", "soft feathers make their flight silent",
        "they can turn their heads very far", "sharp talons grab the prey"}},
      {"How do I take better photos with a phone?",
       {"clean the lens before shooting", "use natural light when possible",
        "tap the screen to set focus", "follow the rule of thirds",
        "hold the phone steady with both hands", "avoid digital zoom"}},
  };
  return bank;
}

}  // namespace

const std::vector<std::string>& synthetic_hedges() {
  static const std::vector<std::string> hedges = {"I believe", "Probably,", "As far as I know,",
                                                  "It seems that"};
  return hedges;
}

const std::vector<std::string>& synthetic_overconfident_openers() {
  static const std::vector<std::string> openers = {"Definitely,", "Without any doubt,",
                                                   "Everyone knows that"};
  return openers;
}

const std::vector<std::string>& synthetic_filler_sentences() {
  static const std::vector<std::string> filler = {
      "that is a common question",   "there are many views on this", "this comes up a lot",
      "people ask about this often", "it depends on many things",    "there is a lot to say here",
  };
  return filler;
}

namespace {

// Random subset of size k of {0, ..., n-1} as a membership mask (partial Fisher–Yates).
std::vector<bool> random_subset(int64_t n, int64_t k, std::mt19937_64& rng) {
  std::vector<int64_t> items(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    items[static_cast<size_t>(i)] = i;
  std::vector<bool> mask(static_cast<size_t>(n), false);
  for (int64_t i = 0; i < k; ++i) {
    const int64_t pick = i + detail::uniform_index(rng, n - i);
    std::swap(items[static_cast<size_t>(i)], items[static_cast<size_t>(pick)]);
    mask[static_cast<size_t>(items[static_cast<size_t>(i)])] = true;
  }
  return mask;
}

std::string lowercase(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

RatedCorpus make_synthetic_corpus(const SyntheticOptions& options) {
  if (options.prompts < 1 || options.responses_per_prompt < 1) {
    throw Error("data", "synthetic corpus needs prompts >= 1 and responses_per_prompt >= 1, got " +
                            std::to_string(options.prompts) + " and " +
                            std::to_string(options.responses_per_prompt));
  }
  if (!(options.na_fraction >= 0.0 && options.na_fraction <= 1.0)) {
    throw Error("data", "synthetic na_fraction must lie in [0, 1], got " +
                            std::to_string(options.na_fraction));
  }
  const auto& bank = topics();
  const auto& hedges = synthetic_hedges();
  const auto& openers = synthetic_overconfident_openers();
  const auto& filler = synthetic_filler_sentences();
  constexpr int64_t A = 4;  // helpfulness, honesty, instruction_following, truthfulness

  RatedCorpus corpus;
  corpus.aspects = ultrafeedback_aspects();
  corpus.source = "tailor-synthetic";
  std::mt19937_64 rng(options.seed);
  for (int64_t p = 0; p < options.prompts; ++p) {
    const Topic& topic = bank[static_cast<size_t>(detail::uniform_index(rng, bank.size()))];
    const bool as_list = detail::uniform_index(rng, 2) == 0;
    corpus.prompts.push_back(std::string(topic.question) +
                             (as_list ? " Answer as a list." : " Answer in prose."));
    for (int64_t k = 0; k < options.responses_per_prompt; ++k) {
      // Draw each aspect's value, the sentences carrying its feature, and whether it is "N/A".
      std::vector<std::vector<bool>> positive;
      for (int64_t a = 0; a < A; ++a) {
        const int64_t value = 1 + detail::uniform_index(rng, 5);
        positive.push_back(random_subset(kSentences, value, rng));
        const bool not_rated = detail::uniform_open01(rng) < options.na_fraction;
        corpus.ratings.push_back(not_rated ? std::nanf("") : static_cast<float>(value));
      }
      // Informative sentences are distinct facts of the topic, in a shuffled order.
      std::vector<int64_t> fact_order(topic.facts.size());
      for (size_t f = 0; f < fact_order.size(); ++f)
        fact_order[f] = static_cast<int64_t>(f);
      for (size_t f = 0; f < fact_order.size(); ++f) {
        const size_t pick = f + static_cast<size_t>(detail::uniform_index(
                                    rng, static_cast<int64_t>(fact_order.size() - f)));
        std::swap(fact_order[f], fact_order[pick]);
      }
      size_t next_fact = 0;
      std::string response;
      for (int s = 0; s < kSentences; ++s) {
        const std::string content =
            positive[0][s] ? topic.facts[static_cast<size_t>(fact_order[next_fact++])]
                           : filler[static_cast<size_t>(detail::uniform_index(rng, filler.size()))];
        const std::string& opener =
            positive[1][s]
                ? hedges[static_cast<size_t>(detail::uniform_index(rng, hedges.size()))]
                : openers[static_cast<size_t>(detail::uniform_index(rng, openers.size()))];
        std::string sentence = opener + " " + content;
        if (positive[3][s]) {
          sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence[0])));
          sentence += ".";
        } else {
          sentence = lowercase(sentence) + "!!";
        }
        const bool follows = positive[2][s];
        if (as_list && follows) sentence = "- " + sentence;
        if (!as_list && !follows) sentence = "* " + sentence;
        if (s > 0) response += as_list ? "\n" : " ";
        response += sentence;
      }
      corpus.responses.push_back(std::move(response));
      corpus.response_prompt.push_back(p);
    }
  }
  corpus.validate();
  return corpus;
}

void write_ultrafeedback_raw_jsonl(const fs::path& out, const RatedCorpus& corpus) {
  corpus.validate();
  std::vector<std::vector<int64_t>> by_prompt(corpus.prompts.size());
  for (int64_t r = 0; r < corpus.num_responses(); ++r)
    by_prompt[static_cast<size_t>(corpus.response_prompt[static_cast<size_t>(r)])].push_back(r);
  std::string text;
  for (size_t p = 0; p < corpus.prompts.size(); ++p) {
    nlohmann::json completions = nlohmann::json::array();
    for (int64_t r : by_prompt[p]) {
      nlohmann::json annotations = nlohmann::json::object();
      for (int64_t a = 0; a < corpus.num_aspects(); ++a) {
        const float v = corpus.rating(r, a);
        std::string rating = "N/A";
        if (!std::isnan(v)) {
          if (!(v >= 1.0f && v <= 5.0f) || v != std::floor(v)) {
            throw Error("data", "response " + std::to_string(r) + " has " +
                                    corpus.aspects[static_cast<size_t>(a)] + " rating " +
                                    std::to_string(v) +
                                    "; UltraFeedback ratings are integers 1..5 or N/A");
          }
          rating = std::to_string(static_cast<int>(v));
        }
        annotations[corpus.aspects[static_cast<size_t>(a)]] = {{"Rating", rating}};
      }
      completions.push_back(
          {{"response", corpus.responses[static_cast<size_t>(r)]}, {"annotations", annotations}});
    }
    const nlohmann::json line = {{"instruction", corpus.prompts[p]},
                                 {"completions", completions},
                                 {"source", corpus.source}};
    text += line.dump() + "\n";
  }
  write_file_atomic(out, text);
}

}  // namespace tailor::data
