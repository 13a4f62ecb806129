#!/usr/bin/env python3
"""tailor vs PyTorch eager on one GPU, in one run, with the same shapes.

What it measures (every number is from this run, on this machine's GPU):

  train   GPT-2 124M training steps (forward + backward + AdamW step + zero_grad), random
          tokens, dropout 0, B x T (default 8 x 1024), configs fp32 (fp32 weights),
          bf16_autocast (fp32 weights, bf16 autocast) and bf16 (bf16 weights).
          tailor:  `tailor bench --device cuda --suite train ...`
          PyTorch: transformers GPT2LMHeadModel(GPT2Config()), attn_implementation="eager"
                   (tailor's attention is plain matmul + softmax, so this is the like-for-like
                   row), plus rows with attn_implementation="sdpa" for fp32 and bf16_autocast,
                   labelled as such.
  lora7b  one LoRA step of a Mistral-7B-v0.1-shaped model (random init, bf16, eager attention,
          B=1, T=2048, r=16, alpha=32, dropout 0 on q,k,v,o,gate,up,down), with ms/step,
          tokens/s, peak memory and MFU. If PyTorch runs out of memory at T=2048 (or tailor
          does), both sides are measured again at T=1024: the table compares the same T.
  decode  greedy KV-cache decoding, bf16, random init, eager attention, GPT-2 124M and
          Mistral-7B, batch 1 and 16, 32 random prompt tokens, 128 new tokens: generated
          tokens/s over the whole generate call (prefill included), as tailor measures it.

Timing on both sides: torch.cuda.synchronize() (tailor: the same wait) before reading the clock
at the start and the end of every step; mean over the timed steps after the warm-up steps.
Peak memory on both sides: the CUDA caching allocator's peak allocated bytes of the
configuration (torch.cuda.max_memory_allocated after a reset; tailor reports the same counter).

PyTorch side, details chosen to match tailor's bench (cli/cli_bench.cpp):
  * loss: HF's labels=input_ids loss = mean next-token cross-entropy over B*(T-1) tokens, logits
    upcast to float32 (tailor: causal_lm_loss_sum(float32 logits) / (B*(T-1))).
  * optimizer: torch.optim.AdamW(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
    foreach=False) -- the per-tensor loop, like tailor's eager per-tensor AdamW; weight decay
    only on parameters with dim >= 2 (tailor's decays_by_default).
    bf16 parameters: tailor's AdamW keeps an fp32 master copy and fp32 moments and rounds the
    result back into the bf16 parameter, so by default (--bf16-adamw master) the PyTorch side
    does the same: torch AdamW on fp32 master copies, bf16 params overwritten after each step.
    --bf16-adamw plain runs torch AdamW directly on the bf16 parameters (bf16 moments) instead.
  * LoRA: a small hand-written wrapper (not peft): frozen base nn.Linear, A [r, in]
    kaiming-uniform(a=sqrt(5)), B [out, r] zeros, both in the model dtype (bf16, like tailor),
    y = base(x) + (x A^T) B^T * alpha/r; AdamW on the LoRA parameters only.
  * models are built directly on the GPU in their dtype (no float32 CPU copy of the 7B model).

MFU (lora7b, the same formula for both sides), per token of a LoRA step with a frozen base:
    flops/token = 4*N_base + 6*N_lora + 12*L*T*d
  N_base = parameters of all matmul weights (q,k,v,o,gate,up,down in every layer + lm_head; the
  embedding lookup is not a matmul), N_lora = LoRA factor parameters, L layers, d = n_heads *
  head_dim, T the sequence length. Forward 2N + 4LTd (QK^T and AV over the full TxT square, no
  causal discount: PaLM appendix B convention); backward with respect to activations 2N + 8LTd;
  weight gradients only for the LoRA factors, 2*N_lora. MFU = tokens/s * flops/token / peak,
  peak = 989 TFLOP/s (H100 SXM dense bf16; --peak-tflops to change).

Run (on the GPU machine, next to a CUDA build of tailor):
    PYTHONUNBUFFERED=1 python3 launch/bench_gpu.py --tailor build-gpu/tailor --out bench.json
  writes bench.json (everything, raw records included) and bench.md (the tables), and prints
  the tables. --suites train,lora7b,decode picks suites; --quick is a smoke run with tiny steps.
  Each measurement is guarded: a failure is printed and recorded and the rest still runs. Exit
  status 1 when any final measurement failed, else 0.
"""

import argparse
import gc
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback

try:
    import torch
    import torch.nn as nn
except Exception as exc:  # the tailor half can still run
    torch = None
    nn = None
    TORCH_IMPORT_ERROR = repr(exc)
else:
    TORCH_IMPORT_ERROR = None

MISTRAL_7B = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=32768,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    sliding_window=4096,
    tie_word_embeddings=False,
    attention_dropout=0.0,
)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA_RANK = 16
LORA_ALPHA = 32.0
TRAIN_CONFIGS = ("fp32", "bf16_autocast", "bf16")
SDPA_CONFIGS = ("fp32", "bf16_autocast")

IMPL_TAILOR = "tailor"
IMPL_EAGER = "PyTorch eager"
IMPL_SDPA = "PyTorch sdpa"


def log(*parts):
    print(*parts, flush=True)


def short_error(exc):
    text = "%s: %s" % (type(exc).__name__, exc)
    text = " ".join(text.split())
    return text[:300]


def is_oom_text(text):
    return "out of memory" in (text or "").lower()


def cleanup():
    """Frees what the last measurement left: Python objects, cached CUDA blocks, the peak."""
    gc.collect()
    if torch is not None:
        try:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
        except Exception as exc:
            log("  [cleanup] %s" % short_error(exc))


def sync():
    torch.cuda.synchronize()


def peak_mib():
    return torch.cuda.max_memory_allocated() / 2.0 ** 20


# --------------------------------------------------------------------------------------------
# FLOPs (lora7b MFU)


def lora7b_flops_per_token(T, c=MISTRAL_7B, r=LORA_RANK):
    """4*N_base + 6*N_lora + 12*L*T*d (see the module docstring)."""
    d = c["hidden_size"]
    ff = c["intermediate_size"]
    L = c["num_hidden_layers"]
    head_dim = d // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * head_dim
    attn_d = c["num_attention_heads"] * head_dim
    shapes = [  # (in, out) of the seven projections
        (d, attn_d), (d, kv), (d, kv), (attn_d, d), (d, ff), (d, ff), (ff, d)]
    n_base = L * sum(i * o for i, o in shapes) + d * c["vocab_size"]  # + lm_head
    n_lora = L * sum(r * (i + o) for i, o in shapes)
    attention = 12 * L * T * attn_d
    return {
        "flops_per_token": 4 * n_base + 6 * n_lora + attention,
        "n_base_matmul": n_base,
        "n_lora": n_lora,
        "attention_term": attention,
    }


# --------------------------------------------------------------------------------------------
# tailor


def parse_records(text):
    """JSON objects, one a line; anything else is ignored."""
    records = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def run_tailor(args, extra, results, label):
    """Runs `tailor bench --device cuda EXTRA`; returns (records, error or None, stderr)."""
    cmd = [args.tailor, "bench", "--device", "cuda"] + [str(x) for x in extra]
    entry = {"label": label, "command": shlex.join(cmd)}
    results["commands"].append(entry)
    log("$ " + entry["command"])
    cleanup()  # leave the GPU to the child
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, errors="replace",
                              timeout=args.tailor_timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode("utf-8", "replace")
        err = exc.stderr if isinstance(exc.stderr, str) else (exc.stderr or b"").decode("utf-8", "replace")
        entry.update(rc=None, seconds=time.perf_counter() - start, stdout=out, stderr_tail=err[-4000:],
                     error="timed out after %d s" % args.tailor_timeout)
        log(out)
        log("  [tailor] timed out after %d s" % args.tailor_timeout)
        return parse_records(err), entry["error"], err
    except Exception as exc:
        entry.update(rc=None, seconds=time.perf_counter() - start, error=short_error(exc))
        log("  [tailor] could not run: %s" % entry["error"])
        return [], entry["error"], ""
    entry.update(rc=proc.returncode, seconds=round(time.perf_counter() - start, 2),
                 stdout=proc.stdout)
    log(proc.stdout.rstrip())
    records = parse_records(proc.stderr)
    entry["records"] = records
    other = [l for l in proc.stderr.splitlines() if l.strip() and not l.strip().startswith("{")]
    entry["stderr_tail"] = "\n".join(other[-40:])
    error = None
    if proc.returncode != 0:
        error = "exit %d: %s" % (proc.returncode, " | ".join(other[-3:])[:300] or "(no message)")
        log("  [tailor] " + error)
    entry["error"] = error
    return records, error, proc.stderr


def tailor_row(suite, rec, **extra):
    row = {"suite": suite, "impl": IMPL_TAILOR}
    for key in ("config", "batch", "seq", "ms_per_step", "tokens_per_s", "peak_memory_mib",
                "trainable_parameters", "prompt_tokens", "new_tokens", "ms_per_token_step",
                "dtype", "device", "steps"):
        if key in rec:
            row[key] = rec[key]
    row.update(extra)
    row["raw"] = rec
    return row


# --------------------------------------------------------------------------------------------
# PyTorch building blocks


def build_on_gpu(model_cls, config, dtype):
    """The model built directly on the GPU in `dtype` (random init there, no CPU copy)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("cuda"):
            model = model_cls(config)
    finally:
        torch.set_default_dtype(previous)
    params = list(model.parameters())
    if any(p.device.type != "cuda" for p in params):
        model.to("cuda")
    if any(p.is_floating_point() and p.dtype != dtype for p in params):
        model.to(dtype)
    return model


def attn_used(model):
    try:
        return getattr(model.config, "_attn_implementation", None)
    except Exception:
        return None


def check_attn(row, wanted):
    used = row.get("attn_implementation")
    return "" if used in (wanted, None) else "attention ran as %r, not %r" % (used, wanted)


def gpt2_config(attn):
    from transformers import GPT2Config
    config = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        summary_first_dropout=0.0, attn_implementation=attn)
    try:
        config._attn_implementation = attn
    except Exception:
        pass
    return config


def mistral_config(attn):
    from transformers import MistralConfig
    try:
        config = MistralConfig(attn_implementation=attn, **MISTRAL_7B)
    except Exception as exc:  # a transformers without the legacy rope_theta keyword
        log("  MistralConfig(rope_theta=...) failed (%s); using rope_parameters" % short_error(exc))
        fields = {k: v for k, v in MISTRAL_7B.items() if k != "rope_theta"}
        config = MistralConfig(attn_implementation=attn, rope_parameters={
            "rope_type": "default", "rope_theta": MISTRAL_7B["rope_theta"]}, **fields)
    try:
        config._attn_implementation = attn
    except Exception:
        pass
    return config


class MasterAdamW:
    """torch AdamW (foreach=False) with an fp32 master copy and fp32 moments for every bf16/fp16
    parameter, the result rounded back into the parameter: what tailor's AdamW does. Float32
    parameters are stepped in place. Weight decay on dim >= 2 only."""

    def __init__(self, params, master, lr=1e-4):
        self.pairs = []  # (low-precision param, fp32 master)
        decay, no_decay = [], []
        for p in params:
            target = p
            if master and p.dtype in (torch.bfloat16, torch.float16):
                target = p.detach().to(torch.float32).requires_grad_(True)
                self.pairs.append((p, target))
            (decay if p.dim() >= 2 else no_decay).append(target)
        groups = []
        if decay:
            groups.append({"params": decay, "weight_decay": 0.01})
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        self.opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=0.01, foreach=False)

    def step(self):
        for p, m in self.pairs:  # widen the grads one tensor at a time
            m.grad = None if p.grad is None else p.grad.float()
            p.grad = None
        self.opt.step()
        with torch.no_grad():
            for p, m in self.pairs:
                p.copy_(m)  # round to nearest even
                m.grad = None

    def zero_grad(self):
        self.opt.zero_grad(set_to_none=True)
        for p, _ in self.pairs:
            p.grad = None


def timed_training(model, ids, autocast, optimizer, warmup, steps):
    times = []
    for i in range(warmup + steps):
        sync()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            out = model(input_ids=ids, labels=ids, use_cache=False)
        loss = out.loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
        del out, loss
    return times


def step_summary(times, tokens_per_step):
    step_s = sum(times) / len(times)
    return {
        "ms_per_step": step_s * 1e3,
        "tokens_per_s": tokens_per_step / step_s,
        "step_ms_all": [round(t * 1e3, 3) for t in times],
    }


# --------------------------------------------------------------------------------------------
# PyTorch measurements (each builds and drops its own model; the caller runs cleanup())


def pt_train(config_name, attn, B, T, warmup, steps, bf16_adamw):
    from transformers import GPT2LMHeadModel
    cleanup()
    torch.manual_seed(0)
    dtype = torch.bfloat16 if config_name == "bf16" else torch.float32
    model = build_on_gpu(GPT2LMHeadModel, gpt2_config(attn), dtype)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = MasterAdamW(params, master=(bf16_adamw == "master"))
    trainable = sum(p.numel() for p in params)
    ids = torch.randint(model.config.vocab_size, (B, T), device="cuda")
    times = timed_training(model, ids, config_name == "bf16_autocast", optimizer, warmup, steps)
    row = {"config": config_name, "batch": B, "seq": T, "steps": steps,
           "trainable_parameters": trainable, "attn_implementation": attn_used(model),
           "param_dtype": str(dtype).replace("torch.", "")}
    row.update(step_summary(times, B * T))
    row["peak_memory_mib"] = peak_mib()
    row["note"] = check_attn(row, attn)
    return row


class LoraLinear(nn.Module if nn is not None else object):
    """Frozen base nn.Linear + trainable A [r, in] and B [out, r] in the base's dtype."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)
        w = base.weight
        a = torch.empty(r, base.in_features, device=w.device, dtype=torch.float32)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # PEFT / tailor: bound 1/sqrt(in)
        self.lora_A = nn.Parameter(a.to(w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=w.device, dtype=w.dtype))
        self.scaling = alpha / r

    def forward(self, x):
        y = self.base(x)
        delta = torch.matmul(torch.matmul(x, self.lora_A.t()), self.lora_B.t())
        return torch.add(y, delta, alpha=self.scaling)


def apply_lora(model, targets, r, alpha):
    model.requires_grad_(False)
    wrapped = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or name.rsplit(".", 1)[-1] not in targets:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoraLinear(module, r, alpha))
        wrapped += 1
    return wrapped


def pt_lora7b(T, warmup, steps, bf16_adamw):
    from transformers import MistralForCausalLM
    cleanup()
    torch.manual_seed(0)
    model = build_on_gpu(MistralForCausalLM, mistral_config("eager"), torch.bfloat16)
    wrapped = apply_lora(model, LORA_TARGETS, LORA_RANK, LORA_ALPHA)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    optimizer = MasterAdamW(params, master=(bf16_adamw == "master"))
    ids = torch.randint(MISTRAL_7B["vocab_size"], (1, T), device="cuda")
    times = timed_training(model, ids, False, optimizer, warmup, steps)
    row = {"config": "lora_bf16", "batch": 1, "seq": T, "steps": steps,
           "trainable_parameters": trainable, "lora_layers": wrapped,
           "attn_implementation": attn_used(model),
           "rope": str(getattr(model.config, "rope_parameters", None)
                       or getattr(model.config, "rope_theta", None))}
    row.update(step_summary(times, T))
    row["peak_memory_mib"] = peak_mib()
    notes = [check_attn(row, "eager")]
    expected = lora7b_flops_per_token(T)["n_lora"]
    if trainable != expected:
        notes.append("trainable %d != expected LoRA parameters %d" % (trainable, expected))
    row["note"] = "; ".join(n for n in notes if n)
    return row


def pt_decode(model_name, B, prompt_tokens, new_tokens, repeats, warmup_tokens):
    cleanup()
    torch.manual_seed(0)
    if model_name == "gpt2":
        from transformers import GPT2LMHeadModel
        model = build_on_gpu(GPT2LMHeadModel, gpt2_config("eager"), torch.bfloat16)
    else:
        from transformers import MistralForCausalLM
        model = build_on_gpu(MistralForCausalLM, mistral_config("eager"), torch.bfloat16)
    model.eval()
    vocab = model.config.vocab_size
    ids = torch.randint(vocab, (B, prompt_tokens), device="cuda")
    mask = torch.ones_like(ids)

    def generate(n):
        # min_new_tokens = max_new_tokens and no EOS: every row decodes exactly n tokens.
        return model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                              do_sample=False, eos_token_id=None, pad_token_id=0, use_cache=True)

    with torch.no_grad():
        generate(warmup_tokens)  # warm-up
        sync()
        total = 0.0
        generated = 0
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            out = generate(new_tokens)
            sync()
            total += time.perf_counter() - start
            generated += out.shape[0] * (out.shape[1] - prompt_tokens)
            del out
    row = {"model": model_name, "dtype": "bf16", "batch": B, "prompt_tokens": prompt_tokens,
           "new_tokens": new_tokens, "generated_tokens": generated, "repeats": repeats,
           "tokens_per_s": generated / total,
           "ms_per_token_step": 1e3 * total / (repeats * new_tokens),
           "attn_implementation": attn_used(model)}
    row["peak_memory_mib"] = peak_mib()
    notes = [check_attn(row, "eager")]
    if generated != repeats * B * new_tokens:
        notes.append("generated %d tokens, expected %d" % (generated, repeats * B * new_tokens))
    row["note"] = "; ".join(n for n in notes if n)
    return row


def guarded(results, suite, impl, what, fn, *fn_args):
    """Runs one PyTorch measurement; on failure prints and returns an error row."""
    log("[%s] %s: %s" % (suite, impl, what))
    if torch is None:
        row = {"error": "torch not importable: %s" % TORCH_IMPORT_ERROR}
    else:
        try:
            row = fn(*fn_args)
        except Exception as exc:
            row = {"error": short_error(exc), "oom": is_oom_text(str(exc))}
            log("  FAILED: %s" % row["error"])
            tb = traceback.format_exc()
            results["errors"].append({"suite": suite, "impl": impl, "what": what,
                                      "error": row["error"], "traceback": tb[-3000:]})
            del tb
    cleanup()
    row["suite"] = suite
    row["impl"] = impl
    if "error" not in row:
        log("  %s" % ", ".join("%s=%s" % (k, fmt_value(v)) for k, v in row.items()
                                 if k in ("ms_per_step", "tokens_per_s", "peak_memory_mib",
                                          "ms_per_token_step", "trainable_parameters")))
    return row


# --------------------------------------------------------------------------------------------
# suites


def suite_train(args, results):
    B, T = args.train_batch, args.train_seq
    rows = []
    records, error, _ = run_tailor(
        args, ["--suite", "train", "--preset", "gpt2", "--batch", B, "--seq", T,
               "--config", "fp32", "--config", "bf16_autocast", "--config", "bf16",
               "--warmup", args.train_warmup, "--steps", args.train_steps], results, "train")
    found = {r.get("config"): r for r in records if r.get("suite", "train") == "train"}
    for name in TRAIN_CONFIGS:
        if name in found:
            rows.append(tailor_row("train", found[name]))
        else:
            rows.append({"suite": "train", "impl": IMPL_TAILOR, "config": name, "batch": B,
                         "seq": T, "error": error or "no record for this config"})
    for name in TRAIN_CONFIGS:
        row = guarded(results, "train", IMPL_EAGER, "GPT-2 %s B=%d T=%d" % (name, B, T), pt_train,
                      name, "eager", B, T, args.train_warmup, args.train_steps, args.bf16_adamw)
        row.setdefault("config", name)
        row.setdefault("batch", B)
        row.setdefault("seq", T)
        rows.append(row)
    if not args.no_sdpa:
        for name in SDPA_CONFIGS:
            row = guarded(results, "train", IMPL_SDPA, "GPT-2 %s B=%d T=%d" % (name, B, T),
                          pt_train, name, "sdpa", B, T, args.train_warmup, args.train_steps,
                          args.bf16_adamw)
            row.setdefault("config", name)
            row.setdefault("batch", B)
            row.setdefault("seq", T)
            rows.append(row)
    results["suites"]["train"] = rows


def suite_lora7b(args, results):
    candidates = [args.lora_seq]
    if args.lora_fallback_seq and args.lora_fallback_seq < args.lora_seq:
        candidates.append(args.lora_fallback_seq)
    rows = []
    for i, T in enumerate(candidates):
        last = i == len(candidates) - 1
        pt = guarded(results, "lora7b", IMPL_EAGER, "Mistral-7B LoRA T=%d" % T, pt_lora7b,
                     T, 1, args.lora_steps, args.bf16_adamw)
        pt.setdefault("config", "lora_bf16")
        pt.setdefault("batch", 1)
        pt.setdefault("seq", T)
        if pt.get("oom") and not last:
            pt["note"] = "out of memory: both sides measured again at T=%d" % candidates[i + 1]
            rows.append(pt)
            continue
        records, error, stderr = run_tailor(
            args, ["--suite", "lora7b", "--lora7b-seq", T, "--lora7b-steps", args.lora_steps],
            results, "lora7b T=%d" % T)
        found = [r for r in records if r.get("suite", "lora7b") == "lora7b"]
        if found:
            tl = tailor_row("lora7b", found[-1])
        else:
            tl = {"suite": "lora7b", "impl": IMPL_TAILOR, "config": "lora_bf16", "batch": 1,
                  "seq": T, "error": error or "no lora7b record"}
        if "error" in tl and is_oom_text(stderr) and not last:
            tl["note"] = "out of memory: both sides measured again at T=%d" % candidates[i + 1]
            rows.extend([tl, pt])
            continue
        rows.extend([tl, pt])
        break
    for row in rows:
        if "error" in row or not row.get("tokens_per_s"):
            continue
        f = lora7b_flops_per_token(int(row.get("seq", 0)))
        row.update(f)
        row["model_tflops_per_s"] = row["tokens_per_s"] * f["flops_per_token"] / 1e12
        row["mfu"] = row["model_tflops_per_s"] / args.peak_tflops
    results["suites"]["lora7b"] = rows


def suite_decode(args, results):
    rows = []
    for model_name in args.decode_models:
        extra = ["--suite", "decode", "--decode-preset", model_name]
        for b in args.decode_batches:
            extra += ["--decode-batch", b]
        extra += ["--prompt-tokens", args.prompt_tokens, "--new-tokens", args.new_tokens]
        records, error, _ = run_tailor(args, extra, results, "decode %s" % model_name)
        found = {}
        for r in records:
            if r.get("suite", "decode") == "decode" and "batch" in r:
                found[r["batch"]] = r
        for b in args.decode_batches:
            if b in found:
                rows.append(tailor_row("decode", found[b], model=model_name))
            else:
                rows.append({"suite": "decode", "impl": IMPL_TAILOR, "model": model_name,
                             "batch": b, "prompt_tokens": args.prompt_tokens,
                             "new_tokens": args.new_tokens,
                             "error": error or "no record for this batch"})
        for b in args.decode_batches:
            row = guarded(results, "decode", IMPL_EAGER, "%s batch %d" % (model_name, b),
                          pt_decode, model_name, b, args.prompt_tokens, args.new_tokens,
                          2, min(args.new_tokens, 16))
            row.setdefault("model", model_name)
            row.setdefault("batch", b)
            row.setdefault("prompt_tokens", args.prompt_tokens)
            row.setdefault("new_tokens", args.new_tokens)
            rows.append(row)
    results["suites"]["decode"] = rows


# --------------------------------------------------------------------------------------------
# tables


def fmt_value(v, digits=1):
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return "-"
        return "%.*f" % (digits, v)
    return str(v)


def num(row, key):
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def gib(row):
    v = num(row, "peak_memory_mib")
    return None if v is None or v < 0 else v / 1024.0


def ratio(tailor_row_, row):
    a = num(tailor_row_, "tokens_per_s") if tailor_row_ else None
    b = num(row, "tokens_per_s")
    if a is None or b is None or b <= 0:
        return "-"
    return "%.2f" % (a / b)


def cell(text):
    return str(text).replace("|", "/").replace("\n", " ")


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        lines.append("| " + " | ".join(cell(x) for x in r) + " |")
    return "\n".join(lines)


def note_of(row):
    parts = []
    if row.get("error"):
        parts.append("ERROR: " + str(row["error"])[:160])
    if row.get("note"):
        parts.append(str(row["note"]))
    return "; ".join(parts) or ""


def md_train(rows):
    tailor = {r.get("config"): r for r in rows if r["impl"] == IMPL_TAILOR}
    headers = ["config", "impl", "B", "T", "ms/step", "tokens/s", "peak GiB", "trainable",
               "tailor speed / this", "note"]
    out = []
    order = {name: i for i, name in enumerate(TRAIN_CONFIGS)}
    impl_order = {IMPL_TAILOR: 0, IMPL_EAGER: 1, IMPL_SDPA: 2}
    for r in sorted(rows, key=lambda r: (order.get(r.get("config"), 9), impl_order.get(r["impl"], 9))):
        is_tailor = r["impl"] == IMPL_TAILOR
        out.append([r.get("config", "-"), r["impl"], fmt_value(r.get("batch")),
                    fmt_value(r.get("seq")), fmt_value(num(r, "ms_per_step")),
                    fmt_value(num(r, "tokens_per_s"), 0), fmt_value(gib(r), 2),
                    fmt_value(r.get("trainable_parameters")),
                    "-" if is_tailor else ratio(tailor.get(r.get("config")), r), note_of(r)])
    return table(headers, out)


def md_lora7b(rows):
    tailor = {r.get("seq"): r for r in rows if r["impl"] == IMPL_TAILOR and "error" not in r}
    headers = ["impl", "B", "T", "ms/step", "tokens/s", "peak GiB", "trainable",
               "model TFLOP/s", "MFU", "tailor speed / this", "note"]
    out = []
    for r in rows:
        is_tailor = r["impl"] == IMPL_TAILOR
        mfu = num(r, "mfu")
        out.append([r["impl"], fmt_value(r.get("batch")), fmt_value(r.get("seq")),
                    fmt_value(num(r, "ms_per_step")), fmt_value(num(r, "tokens_per_s"), 0),
                    fmt_value(gib(r), 2), fmt_value(r.get("trainable_parameters")),
                    fmt_value(num(r, "model_tflops_per_s")),
                    "-" if mfu is None else "%.1f%%" % (100 * mfu),
                    "-" if is_tailor else ratio(tailor.get(r.get("seq")), r), note_of(r)])
    return table(headers, out)


def md_decode(rows):
    tailor = {(r.get("model"), r.get("batch")): r for r in rows if r["impl"] == IMPL_TAILOR}
    headers = ["model", "batch", "impl", "prompt", "new", "tokens/s", "ms/token step",
               "peak GiB", "tailor speed / this", "note"]
    out = []
    keys = []
    for r in rows:
        k = (r.get("model"), r.get("batch"))
        if k not in keys:
            keys.append(k)
    for k in keys:
        for r in sorted([r for r in rows if (r.get("model"), r.get("batch")) == k],
                        key=lambda r: 0 if r["impl"] == IMPL_TAILOR else 1):
            is_tailor = r["impl"] == IMPL_TAILOR
            out.append([fmt_value(k[0]), fmt_value(k[1]), r["impl"],
                        fmt_value(r.get("prompt_tokens")), fmt_value(r.get("new_tokens")),
                        fmt_value(num(r, "tokens_per_s")), fmt_value(num(r, "ms_per_token_step"), 2),
                        fmt_value(gib(r), 2), "-" if is_tailor else ratio(tailor.get(k), r),
                        note_of(r)])
    return table(headers, out)


def markdown(args, results):
    meta = results["meta"]
    lines = ["# tailor vs PyTorch eager on %s" % meta.get("gpu", "?"), ""]
    lines.append("torch %s (CUDA %s), transformers %s, Python %s; %s. Started %s, took %s s." % (
        meta.get("torch", "?"), meta.get("torch_cuda", "?"), meta.get("transformers", "?"),
        meta.get("python", "?"), meta.get("host", "?"), meta.get("started", "?"),
        fmt_value(meta.get("seconds"), 0)))
    lines.append("")
    lines.append("Each number is a mean over timed steps after warm-up, with a CUDA synchronize "
                 "before every clock read; peak GiB is the CUDA caching allocator's peak "
                 "allocated memory of that configuration (max_memory_allocated). "
                 "'tailor speed / this' = tailor tokens/s divided by the row's tokens/s "
                 "(above 1: tailor is faster).")
    lines.append("")
    lines.append("PyTorch side: transformers models, random init on the GPU, dropout 0; "
                 "AdamW(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01 on dim>=2, "
                 "foreach=False); bf16 parameters: %s. Float32 matmuls: TF32 %s (both sides "
                 "default)." % (
                     "fp32 master copy + fp32 moments, like tailor's AdamW"
                     if args.bf16_adamw == "master" else "AdamW directly on the bf16 params "
                     "(bf16 moments; tailor keeps fp32 master + moments)",
                     meta.get("tf32_matmul", "?")))
    suites = results["suites"]
    if "train" in suites:
        lines += ["", "## train: GPT-2 124M training step (B=%d, T=%d, %d warm-up + %d timed "
                  "steps)" % (args.train_batch, args.train_seq, args.train_warmup,
                              args.train_steps), "",
                  "'PyTorch eager' = attn_implementation=\"eager\" (matmul + softmax, like "
                  "tailor); 'PyTorch sdpa' = attn_implementation=\"sdpa\" (fused attention "
                  "kernels), for reference only.", "", md_train(suites["train"])]
    if "lora7b" in suites:
        lines += ["", "## lora7b: Mistral-7B-shaped LoRA step (bf16, r=16, alpha=32, "
                  "q,k,v,o,gate,up,down; 1 warm-up + %d timed steps)" % args.lora_steps, "",
                  "MFU = tokens/s x flops/token / %g TFLOP/s, flops/token = 4*N_base + "
                  "6*N_lora + 12*L*T*d (N_base: matmul weights incl. lm_head, not the "
                  "embedding; forward 2N + 4LTd with full TxT attention, backward w.r.t. "
                  "activations 2N + 8LTd, weight gradients for LoRA only 2*N_lora)." %
                  args.peak_tflops, "", md_lora7b(suites["lora7b"])]
        for r in suites["lora7b"]:
            if "flops_per_token" in r:
                lines += ["", "At T=%s: N_base=%d, N_lora=%d, attention term %d, flops/token "
                          "%.4g." % (r.get("seq"), r["n_base_matmul"], r["n_lora"],
                                     r["attention_term"], r["flops_per_token"])]
                break
    if "decode" in suites:
        lines += ["", "## decode: greedy KV-cache decoding (bf16, random init, eager attention; "
                  "tokens/s = generated tokens / wall time of the whole generate call, prefill "
                  "included; mean of 2 timed calls after a warm-up)", "",
                  md_decode(suites["decode"])]
    lines += ["", "## commands", ""]
    for c in results["commands"]:
        status = "exit %s" % c.get("rc") if c.get("rc") is not None else (c.get("error") or "?")
        lines.append("- `%s` (%s, %s s)" % (c["command"], status, fmt_value(c.get("seconds"))))
    lines.append("- PyTorch: `%s`" % " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv))
    if results["errors"]:
        lines += ["", "## errors", ""]
        for e in results["errors"]:
            lines.append("- %s / %s / %s: %s" % (e["suite"], e["impl"], e["what"], e["error"]))
    return "\n".join(lines) + "\n"


def write_outputs(args, results):
    try:
        results["meta"]["seconds"] = time.time() - results["meta"]["start_time"]
        md = markdown(args, results)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1, default=str)
        with open(args.md, "w") as f:
            f.write(md)
        return md
    except Exception as exc:
        log("[write] %s" % short_error(exc))
        traceback.print_exc()
        return None


# --------------------------------------------------------------------------------------------


def environment():
    meta = {"python": platform.python_version(), "host": platform.node(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "start_time": time.time()}
    if torch is None:
        meta["torch"] = "not importable: %s" % TORCH_IMPORT_ERROR
        return meta
    meta["torch"] = torch.__version__
    meta["torch_cuda"] = getattr(torch.version, "cuda", None)
    try:
        import transformers
        meta["transformers"] = transformers.__version__
    except Exception as exc:
        meta["transformers"] = "not importable: %s" % short_error(exc)
    try:
        meta["cuda_available"] = torch.cuda.is_available()
        meta["gpu"] = torch.cuda.get_device_name()
        props = torch.cuda.get_device_properties(0)
        meta["gpu_memory_gib"] = round(props.total_memory / 2.0 ** 30, 1)
        meta["gpu_sms"] = props.multi_processor_count
    except Exception as exc:
        meta["gpu"] = "unknown (%s)" % short_error(exc)
    try:
        meta["tf32_matmul"] = "on" if torch.backends.cuda.matmul.allow_tf32 else "off"
    except Exception:
        meta["tf32_matmul"] = "?"
    return meta


def int_list(text):
    return [int(x) for x in str(text).split(",") if x.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the top of this file for what is measured.")
    parser.add_argument("--tailor", required=True, help="path of the CUDA build's tailor binary")
    parser.add_argument("--out", default="bench_gpu.json",
                        help="JSON results; the Markdown tables go next to it with .md")
    parser.add_argument("--suites", default="train,lora7b,decode")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-seq", type=int, default=1024)
    parser.add_argument("--train-warmup", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--lora-seq", type=int, default=2048)
    parser.add_argument("--lora-fallback-seq", type=int, default=1024,
                        help="T for both sides when --lora-seq runs out of memory (0: none)")
    parser.add_argument("--lora-steps", type=int, default=5)
    parser.add_argument("--decode-models", default="gpt2,mistral-7b")
    parser.add_argument("--decode-batches", default="1,16")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--bf16-adamw", choices=("master", "plain"), default="master",
                        help="PyTorch AdamW for bf16 params: fp32 master + moments like tailor "
                             "(default), or plain torch AdamW on the bf16 params")
    parser.add_argument("--no-sdpa", action="store_true", help="skip the sdpa reference rows")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="dense bf16 peak for MFU (H100 SXM: 989)")
    parser.add_argument("--tailor-timeout", type=int, default=400,
                        help="seconds per tailor command")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny shapes and steps (numbers meaningless)")
    args = parser.parse_args()
    if args.quick:
        args.train_batch, args.train_seq = 2, 128
        args.train_warmup, args.train_steps = 1, 2
        args.lora_seq, args.lora_fallback_seq, args.lora_steps = 128, 0, 1
        args.prompt_tokens, args.new_tokens = 8, 8
        args.decode_batches = "1,2"
    args.decode_models = [m.strip() for m in args.decode_models.split(",") if m.strip()]
    args.decode_batches = int_list(args.decode_batches)
    args.md = os.path.splitext(args.out)[0] + ".md"
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    if os.path.dirname(os.path.abspath(args.out)):
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)

    results = {"meta": environment(), "args": vars(args).copy(), "commands": [], "suites": {},
               "errors": []}
    meta = results["meta"]
    log("GPU: %s; torch %s; transformers %s" % (meta.get("gpu"), meta.get("torch"),
                                                   meta.get("transformers")))
    if not os.path.exists(args.tailor):
        log("WARNING: %s does not exist; the tailor rows will be errors" % args.tailor)

    runners = {"train": suite_train, "lora7b": suite_lora7b, "decode": suite_decode}
    for name in suites:
        if name not in runners:
            log("unknown suite %r (expected train, lora7b, decode): skipped" % name)
            continue
        log("\n===== %s (%s)" % (name, time.strftime("%H:%M:%S")))
        try:
            runners[name](args, results)
        except Exception as exc:  # a bug in the suite itself: keep the others
            results["errors"].append({"suite": name, "impl": "-", "what": "suite",
                                      "error": short_error(exc),
                                      "traceback": traceback.format_exc()[-3000:]})
            log("suite %s FAILED: %s" % (name, short_error(exc)))
            traceback.print_exc()
        cleanup()
        write_outputs(args, results)  # partial results survive a later crash

    md = write_outputs(args, results)
    log("\n" + (md or "(no Markdown)"))
    log("wrote %s and %s" % (args.out, args.md))
    failed = [r for rows in results["suites"].values() for r in rows
              if r.get("error") and not r.get("note")]
    return 1 if failed or any(s not in results["suites"] for s in suites if s in runners) else 0


if __name__ == "__main__":
    sys.exit(main())
