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

The instruct files train the base of the system-prompt baseline (recipes/chain_base.yaml,
template zephyr): a base that has seen instructions, as the paper's mistral-7b-sft-beta has, so
that putting "Answer in lowercase." in its system turn means something. An instruction fixes one
style dimension (lowercase, UPPERCASE, one word, long, list, no punctuation); the others are
drawn as for every answer, so the instruction is the only thing its answers share. The original
three files come from their own random stream, so they stay byte-identical whatever is added
here.

    python3 tools/gen_styles_data.py
"""
import json
import os
import random

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

    files = {
        "sft_eval.jsonl": examples[:n_eval],
        "sft_train.jsonl": examples[n_eval:],
        "prompts.jsonl": [{"prompt": p} for p in prompts],
        "sft_instruct_train.jsonl": instruct_train,
        "sft_instruct_eval.jsonl": instruct_eval,
    }
    for name, lines in files.items():
        with open(os.path.join(out_dir, name), "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        print(f"{name}: {len(lines)} lines")


if __name__ == "__main__":
    main()
