#!/usr/bin/env python3
"""Regenerates assets/datasets/styles/ (deterministic; stdlib only): the data of the per-user
DPO demo (recipes/dpo_demo_*.yaml, docs/results.md).

A base model for per-user DPO must *sample varied styles*, so that users with different tastes
find answers they like among its samples. Every prompt here asks about an animal, and its answers
come in independently drawn styles:
  length       word (one word), short (one sentence), long (two to six sentences), list
  case         normal, lowercase, UPPERCASE, Title Case
  punctuation  kept, or stripped
so a model trained on them with SFT answers the same prompt in any of these styles.

Files:
  sft_train.jsonl, sft_eval.jsonl  {"prompt", "response"}: 6 answers per prompt, a tenth held out
  prompts.jsonl                    {"prompt"}: every prompt once (the DPO stage samples these)
  sft_instruct_train.jsonl,        the two files above, unchanged and without "system", plus
  sft_instruct_eval.jsonl          instruction following: {"system", "prompt", "response"} with
                                   a style instruction in "system" and an answer that follows it
                                   (3 per prompt, a third of all examples; a tenth held out)
  sft_agent_train.jsonl,           the two instruct files above, unchanged, plus rule sets and
  sft_agent_eval.jsonl             few-shot examples in "system" (5 per prompt; a tenth held out)
  sft_agent_defaults_train.jsonl,  the same with one change (recipes/agent/large_defaults.yaml, an
  sft_agent_defaults_eval.jsonl    ablation): a rule-set example's answer takes from its style only
                                   the features its rules name, and draws the others as every
                                   other answer does (answer_following)
  sft_small_train.jsonl,           the preference agents' small model (recipes/agent/small.yaml):
  sft_small_eval.jsonl             sft_train/eval.jsonl's answers plus rule writing in general,
                                   {"prompt": "Write rules for answering: <task>", "response": a
                                   rule set of some random style, in the rule writer's order} (3
                                   per prompt; a tenth held out). A real small model knows the
                                   words of rules before any user's agent is trained; this one
                                   learns them here, and which rules a user wants from the agent's
                                   LoRA alone.

The instruct files train the base of the system-prompt baseline (recipes/chain_base.yaml,
template zephyr): a base that has seen instructions, as the paper's mistral-7b-sft-beta has, so
that putting "Answer in lowercase." in its system turn means something. An instruction fixes one
style dimension (lowercase, UPPERCASE, one word, long, list, no punctuation); the others are
drawn as for every answer, so the instruction is the only thing its answers share. The original
three files come from their own random stream, so they stay byte-identical whatever is added
here.

The agent files train the large model of the preference-agents pipeline (stages/agent), a tiny
GPT-2 that must follow what an agent puts in its system turn. A rule-set example has in "system"
some of the rules of the shared spec (length "Use at most/at least n words.", list, case,
punctuation; one per line), and an answer that satisfies all of them. The rule writer always
writes its rules in the order length, list, case, punctuation, but the rules are shuffled here:
the base should follow a rule wherever it stands, not learn the line it usually sits on. A
few-shot example has in "system" two answers about other animals in one style ("Answer in the
style of these examples:" then "\nExample:" + each) and an answer in that same style: this
teaches the tiny base in-context style imitation, which a 7B model brings with it, so that the
seed's few-shot baseline means something here. The new examples come from a stream of their own
too, and main() checks each of them against its rule set or its examples.

    python3 tools/gen_styles_data.py
"""
import json
import os
import random
import re
import string

# name (plural), sound, food, home, size
ANIMALS = [
    ("cats", "meow", "fish", "houses", "small"),
    ("dogs", "bark", "meat", "houses", "friendly"),
    ("horses", "neigh", "hay", "stables", "big"),
    ("owls", "hoot", "mice", "trees", "wise"),
    ("foxes", "yip", "berries", "dens", "clever"),
    ("bears", "growl", "honey", "caves", "strong"),
    ("rabbits", "squeak", "carrots", "burrows", "quick"),
    ("whales", "sing", "krill", "oceans", "huge"),
    ("cows", "moo", "grass", "fields", "calm"),
    ("sheep", "bleat", "grass", "meadows", "woolly"),
    ("ducks", "quack", "seeds", "ponds", "noisy"),
    ("frogs", "croak", "insects", "ponds", "green"),
    ("lions", "roar", "meat", "grasslands", "brave"),
    ("wolves", "howl", "deer", "forests", "wild"),
    ("bees", "buzz", "nectar", "hives", "busy"),
    ("mice", "squeak", "cheese", "walls", "tiny"),
    ("pigs", "oink", "scraps", "farms", "smart"),
    ("goats", "bleat", "leaves", "hills", "curious"),
    ("snakes", "hiss", "eggs", "deserts", "quiet"),
    ("crows", "caw", "nuts", "cities", "clever"),
    ("geese", "honk", "grain", "lakes", "loud"),
    ("monkeys", "chatter", "bananas", "jungles", "playful"),
    ("elephants", "trumpet", "plants", "savannas", "gentle"),
    ("dolphins", "click", "fish", "seas", "friendly"),
    ("parrots", "squawk", "fruit", "rainforests", "colorful"),
    ("hens", "cluck", "corn", "coops", "busy"),
    ("seals", "bark", "fish", "coasts", "sleek"),
    ("deer", "bellow", "leaves", "woods", "shy"),
    ("tigers", "growl", "meat", "jungles", "fierce"),
    ("turtles", "hiss", "plants", "rivers", "slow"),
]
TEMPLATES = [
    "Tell me about {a}.",
    "What do you know about {a}?",
    "Describe {a}.",
    "Say something about {a}.",
    "What are {a} like?",
    "Talk about {a}.",
]
ANSWERS_PER_PROMPT = 6

# Style instructions for the "system" field: the style each forces on the answer (the keys of
# answer()'s `force`), and several phrasings, so that a model learns the instruction rather than
# one sentence. The first phrasing of each is drawn half the time: those of "lower" and of
# "word" are the exact texts the system-prompt baseline uses.
INSTRUCTIONS = {
    "lower": (
        {"case": "lower"},
        [
            "Answer in lowercase.",
            "Use only lowercase letters.",
            "Write your answer in lowercase.",
            "Reply in all lowercase letters.",
        ],
    ),
    "upper": (
        {"case": "upper"},
        [
            "Answer in UPPERCASE.",
            "Answer in capital letters.",
            "Write your answer in all caps.",
            "Use only uppercase letters.",
        ],
    ),
    "word": (
        {"length": "word"},
        [
            "Answer in as few words as you can.",
            "Answer in one word.",
            "Reply with a single word.",
            "Be as brief as possible.",
        ],
    ),
    "long": (
        {"length": "long", "min_sentences": 4},
        [
            "Give a long answer.",
            "Answer in detail.",
            "Write several sentences.",
            "Give a detailed answer with many sentences.",
        ],
    ),
    "list": (
        {"length": "list"},
        [
            "Answer with a list.",
            "Answer as a bulleted list.",
            "Reply with bullet points.",
            "Write your answer as a list of points.",
        ],
    ),
    "nopunct": (
        {"strip": True},
        [
            "Answer without punctuation.",
            "Do not use punctuation.",
            "Leave out all punctuation.",
            "Write without any punctuation marks.",
        ],
    ),
}
INSTRUCTED_PER_PROMPT = 3  # distinct instructions per prompt: 540 of 1620 examples


def facts(animal):
    name, sound, food, home, size = animal
    cap = name[0].upper() + name[1:]
    return [
        f"{cap} {sound}.",
        f"{cap} eat {food}.",
        f"{cap} live in {home}.",
        f"{cap} are {size} animals.",
        f"Many people like {name}.",
    ]


def answer(rng, animal, force=None):
    # The extremes a user may want (one word, all lowercase, all capitals) are rare, so that a
    # model that learned to prefer them beats most of the base's samples instead of tying them.
    length = rng.choices(["word", "short", "long", "list"], weights=[1, 3, 4, 2])[0]
    case = rng.choices(["normal", "lower", "upper", "title"], weights=[60, 10, 10, 20])[0]
    strip = rng.random() < 0.25
    # An instruction overrides its dimension after the draws, so that answers without one take
    # exactly the random numbers they always took (the original files stay as they are).
    force = force or {}
    length = force.get("length", length)
    case = force.get("case", case)
    strip = force.get("strip", strip)
    f = facts(animal)
    extra = [f[4], "They are interesting to watch."]
    if length == "word":
        text = animal[4].capitalize() + "."
    elif length == "short":
        text = rng.choice(f[:4])
    elif length == "long":
        # Two to six sentences: longer answers exist for a user who wants them.
        body = rng.sample(f[:4], 4) + extra
        text = " ".join(body[: rng.randint(force.get("min_sentences", 2), 6)])
    else:
        items = rng.sample(f[:4], 3)
        text = "".join("\n- " + s.rstrip(".") for s in items)
    if strip:
        text = "".join(c for c in text if c not in ".,!?;:")
    if case == "lower":
        text = text.lower()
    elif case == "upper":
        text = text.upper()
    elif case == "title":
        text = " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    return text if length == "list" else " " + text


def instructed_examples(rng):
    """INSTRUCTED_PER_PROMPT examples per prompt, each with a different instruction."""
    examples = []
    for animal in ANIMALS:
        for template in TEMPLATES:
            prompt = template.format(a=animal[0])
            for style in rng.sample(sorted(INSTRUCTIONS), INSTRUCTED_PER_PROMPT):
                force, phrasings = INSTRUCTIONS[style]
                examples.append(
                    {
                        "system": rng.choices(
                            phrasings, weights=[len(phrasings) - 1] + [1] * (len(phrasings) - 1)
                        )[0],
                        "prompt": prompt,
                        "response": answer(rng, animal, force),
                    }
                )
    return examples


AGENT_RULE_SETS_PER_PROMPT = 3
AGENT_FEW_SHOT_PER_PROMPT = 2
AGENT_FEW_SHOT_EXAMPLES = 2  # example answers in a few-shot system text
AGENT_RULE_PROB = 0.6  # each feature's rule is in a rule set with this probability
FEW_SHOT_HEADER = "Answer in the style of these examples:"

# Features of a text, measured exactly as the shared spec (and stages/agent in C++) measures them.
_ALNUM = set(string.ascii_letters + string.digits)


def word_tokens(text):
    return [t for t in re.split(r"[ \n\t\r]", text) if any(c in _ALNUM for c in t)]


def words(text):
    return len(word_tokens(text))


def is_list(text):
    return any(line.lstrip(" ").startswith("- ") for line in text.split("\n"))


def has_punctuation(text):
    return any(c in ".,!?;:" for c in text)


def case_of(text):
    """"lower", "upper", "title" or "normal"; None for a text without ASCII letters."""
    letters = [c for c in text if c in string.ascii_letters]
    if not letters:
        return None
    if not any(c.isupper() for c in letters):
        return "lower"
    if not any(c.islower() for c in letters):
        return "upper"
    tokens = word_tokens(text)
    firsts = [next((c for c in t if c in string.ascii_letters), None) for t in tokens]
    if len(tokens) >= 2 and all(c is None or c.isupper() for c in firsts):
        return "title"
    return "normal"


CASE_RULES = {
    "lower": "Answer in lowercase.",
    "upper": "Answer in all caps.",
    "title": "Capitalize every word.",
    "normal": "Use sentence case.",
}


def length_rule(direction, n):
    return f"Use {direction} {n} {'word' if n == 1 else 'words'}."


def list_rule(value):
    return "Answer as a list." if value else "Do not use a list."


def punctuation_rule(value):
    return "Use punctuation." if value else "Do not use punctuation."


def satisfies(text, rule_set):
    """Whether text satisfies every rule (one per line) of rule_set, as the shared spec defines."""
    for rule in rule_set.split("\n"):
        m = re.fullmatch(r"Use (at most|at least) (\d+) words?\.", rule)
        if m:
            n = int(m.group(2))
            ok = words(text) <= n if m.group(1) == "at most" else words(text) >= n
        elif rule in (list_rule(True), list_rule(False)):
            ok = rule == list_rule(is_list(text))
        elif rule in CASE_RULES.values():
            ok = rule == CASE_RULES.get(case_of(text))
        elif rule in (punctuation_rule(True), punctuation_rule(False)):
            ok = rule == punctuation_rule(has_punctuation(text))
        else:
            raise ValueError(f"unknown rule {rule!r}")
        if not ok:
            return False
    return True


def agent_style(rng):
    """A style for answer()'s `force`: every dimension uniform, so rare styles are not rare here."""
    return {
        "length": rng.choice(["word", "short", "long", "list"]),
        "case": rng.choice(["normal", "lower", "upper", "title"]),
        "strip": rng.random() < 0.5,
    }


def rule_set_for(rng, text):
    """Some of the rules text satisfies (each with AGENT_RULE_PROB, at least one), shuffled."""
    features = ["length", "list", "case", "punctuation"]
    if case_of(text) is None:
        features.remove("case")
    chosen = []
    while not chosen:
        chosen = [f for f in features if rng.random() < AGENT_RULE_PROB]
    rules = []
    for feature in chosen:
        if feature == "length":
            n = words(text)
            if rng.random() < 0.5:
                rules.append(length_rule("at most", n + rng.randint(0, 3)))
            else:
                rules.append(length_rule("at least", max(1, n - rng.randint(0, 3))))
        elif feature == "list":
            rules.append(list_rule(is_list(text)))
        elif feature == "case":
            rules.append(CASE_RULES[case_of(text)])
        else:
            rules.append(punctuation_rule(has_punctuation(text)))
    # The rule writer writes them in one order; the base should follow them in any.
    rng.shuffle(rules)
    return "\n".join(rules)


SMALL_RULE_PROMPT = "Write rules for answering: {prompt}"
SMALL_RULE_SETS_PER_PROMPT = 3


def ordered_rule_set_for(rng, text):
    """rule_set_for's rules in the rule writer's fixed order: length, list, case, punctuation."""
    order = ["Use at", "Answer as a list.", "Do not use a list."] + list(CASE_RULES.values())
    order += ["Use punctuation.", "Do not use punctuation."]

    def rank(rule):
        for i, start in enumerate(order):
            if rule.startswith(start):
                return i
        raise AssertionError(rule)

    return "\n".join(sorted(rule_set_for(rng, text).split("\n"), key=rank))


def small_examples(rng):
    """The small model's rule-writing examples: a task, and a rule set for some random style."""
    examples = []
    for animal in ANIMALS:
        for template in TEMPLATES:
            prompt = template.format(a=animal[0])
            for _ in range(SMALL_RULE_SETS_PER_PROMPT):
                styled = answer(rng, animal, agent_style(rng))
                examples.append(
                    {
                        "prompt": SMALL_RULE_PROMPT.format(prompt=prompt),
                        "response": ordered_rule_set_for(rng, styled),
                        "styled": styled,
                    }
                )
    return examples


def answer_following(rng, animal, styled, rules):
    """An answer that follows `rules` (which `styled` follows) and is otherwise a default one.

    A rule changes only what it names: the features a rule set does not mention are drawn as in
    every other answer of the base (answer()'s weights: mostly normal case, punctuation kept,
    short or long sentences), not from the uniform styles the rules are drawn from. So the large
    model learns what an instruction model does: follow the rules, and otherwise answer as it
    would anyway, which is what rules written as differences from its zero-shot answer rely on.
    """
    force = {}
    for rule in rules.split("\n"):
        if rule in CASE_RULES.values():
            force["case"] = case_of(styled)
        elif rule in ("Use punctuation.", "Do not use punctuation."):
            force["strip"] = not has_punctuation(styled)
        elif rule == "Answer as a list.":
            force["length"] = "list"
    for _ in range(1000):
        text = answer(rng, animal, force)
        if satisfies(text, rules):
            return text
    return styled


def few_shot_system(examples):
    return FEW_SHOT_HEADER + "".join("\nExample:" + e for e in examples)


def agent_examples(rng, keep_defaults=False):
    """Rule-set and few-shot examples for every prompt, each tagged with its "kind".

    A rule-set example's answer has the uniform style its rules were read from; with
    keep_defaults, only the features the rules name come from that style (answer_following).
    """
    examples = []
    for animal in ANIMALS:
        others = [a for a in ANIMALS if a is not animal]
        for template in TEMPLATES:
            prompt = template.format(a=animal[0])
            for _ in range(AGENT_RULE_SETS_PER_PROMPT):
                styled = answer(rng, animal, agent_style(rng))
                rules = rule_set_for(rng, styled)
                examples.append(
                    (
                        "rules",
                        {"system": rules, "prompt": prompt,
                         "response": answer_following(rng, animal, styled, rules)
                         if keep_defaults else styled},
                    )
                )
            for _ in range(AGENT_FEW_SHOT_PER_PROMPT):
                style = agent_style(rng)
                shots = [answer(rng, a, style) for a in rng.sample(others, AGENT_FEW_SHOT_EXAMPLES)]
                examples.append(
                    (
                        "few_shot",
                        {"system": few_shot_system(shots), "prompt": prompt,
                         "response": answer(rng, animal, style), "shots": shots},
                    )
                )
    return examples


def check_agent_examples(examples):
    """Asserts that every response follows its rule set, or has the style of its examples."""
    for kind, ex in examples:
        if kind == "rules":
            assert satisfies(ex["response"], ex["system"]), ex
        else:
            for shot in ex["shots"]:
                for feature in (is_list, case_of, has_punctuation):
                    assert feature(shot) == feature(ex["response"]), (feature.__name__, ex)
            assert ex["system"] == few_shot_system(ex["shots"]), ex


def main():
    rng = random.Random(20261126)
    out_dir = os.path.join(os.path.dirname(__file__), "..", "assets", "datasets", "styles")
    os.makedirs(out_dir, exist_ok=True)
    prompts, examples = [], []
    for animal in ANIMALS:
        for template in TEMPLATES:
            prompt = template.format(a=animal[0])
            prompts.append(prompt)
            for _ in range(ANSWERS_PER_PROMPT):
                examples.append({"prompt": prompt, "response": answer(rng, animal)})
    rng.shuffle(examples)
    n_eval = len(examples) // 10

    # A stream of its own: nothing above depends on it.
    instruct_rng = random.Random(20260611)
    instructed = instructed_examples(instruct_rng)
    instruct_rng.shuffle(instructed)
    n_instructed_eval = len(instructed) // 10
    instruct_train = examples[n_eval:] + instructed[n_instructed_eval:]
    instruct_eval = examples[:n_eval] + instructed[:n_instructed_eval]
    # Mixed, so that any prefix (the SFT stage samples the first eval prompts) has both kinds.
    instruct_rng.shuffle(instruct_train)
    instruct_rng.shuffle(instruct_eval)

    # The agent files: a stream of their own as well (the same seed for both variants).
    def agent_files(keep_defaults):
        agent_rng = random.Random(20261207)
        agent = agent_examples(agent_rng, keep_defaults)
        check_agent_examples(agent)
        for kind in ("rules", "few_shot"):
            print(f"agent {kind} examples: {sum(k == kind for k, _ in agent)} (self-check passed)")
        agent = [{k: v for k, v in ex.items() if k != "shots"} for _, ex in agent]
        agent_rng.shuffle(agent)
        n_agent_eval = len(agent) // 10
        train = instruct_train + agent[n_agent_eval:]
        evaluation = instruct_eval + agent[:n_agent_eval]
        agent_rng.shuffle(train)
        agent_rng.shuffle(evaluation)
        longest = max(
            len(e.get("system", "") + e["prompt"] + e["response"]) for e in train + evaluation
        )
        print(f"longest agent example (system+prompt+response): {longest} characters")
        return train, evaluation

    agent_train, agent_eval = agent_files(keep_defaults=False)
    defaults_train, defaults_eval = agent_files(keep_defaults=True)

    # The small model's files: the plain answers, plus rule writing in general (a stream of
    # their own too).
    small_rng = random.Random(20261208)
    small = small_examples(small_rng)
    for ex in small:
        assert satisfies(ex.pop("styled"), ex["response"]), ex
    small_rng.shuffle(small)
    n_small_eval = len(small) // 10
    small_train = examples[n_eval:] + small[n_small_eval:]
    small_eval = examples[:n_eval] + small[:n_small_eval]
    small_rng.shuffle(small_train)
    small_rng.shuffle(small_eval)

    files = {
        "sft_eval.jsonl": examples[:n_eval],
        "sft_train.jsonl": examples[n_eval:],
        "prompts.jsonl": [{"prompt": p} for p in prompts],
        "sft_instruct_train.jsonl": instruct_train,
        "sft_instruct_eval.jsonl": instruct_eval,
        "sft_agent_train.jsonl": agent_train,
        "sft_agent_eval.jsonl": agent_eval,
        "sft_agent_defaults_train.jsonl": defaults_train,
        "sft_agent_defaults_eval.jsonl": defaults_eval,
        "sft_small_train.jsonl": small_train,
        "sft_small_eval.jsonl": small_eval,
    }
    for name, lines in files.items():
        with open(os.path.join(out_dir, name), "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        print(f"{name}: {len(lines)} lines")


if __name__ == "__main__":
    main()
