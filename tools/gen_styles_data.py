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


def answer(rng, animal):
    # The extremes a user may want (one word, all lowercase, all capitals) are rare, so that a
    # model that learned to prefer them beats most of the base's samples instead of tying them.
    length = rng.choices(["word", "short", "long", "list"], weights=[1, 3, 4, 2])[0]
    case = rng.choices(["normal", "lower", "upper", "title"], weights=[60, 10, 10, 20])[0]
    strip = rng.random() < 0.25
    f = facts(animal)
    extra = [f[4], "They are interesting to watch."]
    if length == "word":
        text = animal[4].capitalize() + "."
    elif length == "short":
        text = rng.choice(f[:4])
    elif length == "long":
        # Two to six sentences: longer answers exist for a user who wants them.
        body = rng.sample(f[:4], 4) + extra
        text = " ".join(body[: rng.randint(2, 6)])
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
    files = {
        "sft_eval.jsonl": examples[:n_eval],
        "sft_train.jsonl": examples[n_eval:],
        "prompts.jsonl": [{"prompt": p} for p in prompts],
    }
    for name, lines in files.items():
        with open(os.path.join(out_dir, name), "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        print(f"{name}: {len(lines)} lines")


if __name__ == "__main__":
    main()
