#!/usr/bin/env python3
"""Regenerates assets/datasets/quickstart/{train,eval}.jsonl (deterministic; stdlib only).

Short prompt/response pairs with a learnable structure (arithmetic, word facts, list
formatting) so a tiny GPT-2 trained for a few minutes on CPU shows a clearly falling loss.
    python3 tools/gen_quickstart_data.py
"""
import json
import os
import random

NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()
COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
ANIMALS = ["cat", "dog", "horse", "owl", "fox", "bear", "rabbit", "whale"]
SOUNDS = {"cat": "meows", "dog": "barks", "horse": "neighs", "owl": "hoots", "fox": "yips",
          "bear": "growls", "rabbit": "squeaks", "whale": "sings"}


def example(rng):
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randrange(50), rng.randrange(50)
        return f"What is {a} plus {b}?", f" {a} plus {b} is {a + b}."
    if kind == 1:
        a, b = rng.randrange(20, 90), rng.randrange(20)
        return f"What is {a} minus {b}?", f" {a} minus {b} is {a - b}."
    if kind == 2:
        n = rng.randrange(len(NUMBER_WORDS))
        return f"Write the number {n} in words.", f" The number {n} is written {NUMBER_WORDS[n]}."
    if kind == 3:
        animal = rng.choice(ANIMALS)
        return f"What sound does a {animal} make?", f" A {animal} {SOUNDS[animal]}."
    items = rng.sample(COLORS, rng.randrange(2, 5))
    return ("List these colors one per line: " + ", ".join(items) + ".",
            "\n" + "\n".join(f"- {c}" for c in items))


def write(path, n, seed):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            prompt, response = example(rng)
            f.write(json.dumps({"prompt": prompt, "response": response}) + "\n")


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(__file__), "..", "assets", "datasets", "quickstart")
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "train.jsonl"), 2000, seed=1)
    write(os.path.join(out, "eval.jsonl"), 200, seed=2)
