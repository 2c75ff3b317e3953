"""Training throughput of :class:`SIDRecommender` against a padded Hugging Face T5 baseline.

Ours: length-bucketed batches padded only to the batch's longest history, L' target tokens,
:class:`~models.components.dropout.FastDropout` (as :func:`build_t5` builds it).
Baseline (as the reference implementations train): the same T5 fed every history padded to
``max_history`` items (``max_history * L' + 1`` tokens) with L' + 1 labels (codes + eos) and
the model's built-in loss. Both use AdamW and pre-tensorized data; steps are interleaved so
machine noise hits both alike. Ours times the batches at the midpoint quantiles of its epoch's
batch widths, so its rate estimates a full epoch's.

    python -m scripts.bench_train_throughput --synthetic --steps 6
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import T5ForConditionalGeneration

from benchmark.records import environment
from models.components.seq2seq import (
    EOS,
    SIDRecommender,
    T5Spec,
    length_bucketed_batches,
)
from models.training import pad_histories
from scripts.bench_common import (
    Stopwatch,
    add_data_args,
    load_data,
    matmul_peak_gflops,
    random_sids,
)


def t5_train_flops(spec: T5Spec, vocab: int, batch: int, src: int, tgt: int) -> float:
    """Matmul FLOPs of one forward + backward (3x forward) of T5 on ``[batch, src]`` inputs and
    ``tgt`` decoder positions, padding included."""
    inner, d = spec.num_heads * spec.d_kv, spec.d_model
    enc_tokens, dec_tokens = batch * src, batch * tgt
    attn = lambda q, k: 2 * 2 * batch * spec.num_heads * q * k * spec.d_kv  # noqa: E731
    ffn = lambda n: 2 * 2 * n * d * spec.d_ff  # noqa: E731
    proj = lambda n, count: count * 2 * n * d * inner  # noqa: E731
    encoder = proj(enc_tokens, 4) + attn(src, src) + ffn(enc_tokens)
    decoder = (
        proj(dec_tokens, 6)
        + proj(enc_tokens, 2)
        + attn(tgt, tgt)
        + attn(tgt, src)
        + ffn(dec_tokens)
    )
    forward = (
        spec.num_layers * encoder + spec.num_decoder_layers * decoder + 2 * dec_tokens * d * vocab
    )
    return 3.0 * forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    n_items, histories, targets, _ = load_data(args)
    table = random_sids(n_items, seed=args.seed)
    level_sizes, item_tokens = table.level_sizes, table.tokens()
    spec = T5Spec()
    ours = SIDRecommender(spec, level_sizes)
    base = T5ForConditionalGeneration(ours.t5.config)  # plain HF T5: torch's nn.Dropout
    base.load_state_dict(ours.t5.state_dict())
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-3)
    opt_base = torch.optim.AdamW(base.parameters(), lr=1e-3)
    ours.train()
    base.train()

    hist = pad_histories(histories, args.max_history)
    target_tokens = item_tokens[torch.as_tensor(targets)]
    lengths = (hist > 0).sum(1)
    base_ids, base_mask = ours.encode_inputs(hist, item_tokens)
    base_labels = torch.cat([target_tokens, torch.full((len(hist), 1), EOS)], 1)

    batches = length_bucketed_batches(lengths, args.batch_size, seed=args.seed)
    full = [b for b in batches if len(b) == args.batch_size]
    full.sort(key=lambda b: int(lengths[b].max()))
    timed = [full[int((i + 0.5) / args.steps * len(full))] for i in range(args.steps)]
    order = np.random.default_rng(args.seed).permutation(args.steps)
    ours_batches = [full[len(full) // 2]] * args.warmup + [timed[i] for i in order]
    gen = torch.Generator().manual_seed(args.seed)
    base_batches = [
        torch.randperm(len(hist), generator=gen)[: args.batch_size] for _ in ours_batches
    ]

    def step_ours(idx: torch.Tensor) -> int:
        ids, mask = ours.encode_inputs(hist[idx], item_tokens)
        loss = ours.loss(target_tokens[idx], mask, ids)
        opt_ours.zero_grad(set_to_none=True)
        loss.backward()
        opt_ours.step()
        return ids.shape[1]

    def step_base(idx: torch.Tensor) -> int:
        out = base(input_ids=base_ids[idx], attention_mask=base_mask[idx], labels=base_labels[idx])
        opt_base.zero_grad(set_to_none=True)
        out.loss.backward()
        opt_base.step()
        return base_ids.shape[1]

    vocab = ours.vocab_size
    n_cols = len(level_sizes)
    clocks = {"ours": Stopwatch(), "base": Stopwatch()}
    flops = {"ours": 0.0, "base": 0.0}
    samples = {"ours": 0, "base": 0}
    src_tokens = []
    for i, (idx_ours, idx_base) in enumerate(zip(ours_batches, base_batches)):
        for name, step, idx, tgt in (
            ("ours", step_ours, idx_ours, n_cols),
            ("base", step_base, idx_base, n_cols + 1),
        ):
            clock = clocks[name] if i >= args.warmup else Stopwatch()
            before = clock.wall
            with clock:
                src = step(idx)
            if i >= args.warmup:
                samples[name] += len(idx)
                flops[name] += t5_train_flops(spec, vocab, len(idx), src, tgt)
                if name == "ours":
                    src_tokens.append(src)
            print(f"step {i} {name}: {src} tokens, {clock.wall - before:.2f} s", flush=True)

    probe = ours_batches[0][:32]
    with FlopCounterMode(display=False) as counter:
        step_ours(probe)
    width = int(lengths[probe].max()) * n_cols + 1
    analytic = t5_train_flops(spec, vocab, len(probe), width, n_cols)

    peak = matmul_peak_gflops()
    rate = {k: samples[k] / clocks[k].wall for k in clocks}
    cpu_rate = {k: samples[k] / clocks[k].cpu for k in clocks}
    achieved = flops["ours"] / clocks["ours"].wall / 1e9
    result = {
        "dataset": "synthetic-beauty" if args.synthetic else args.dataset,
        "batch_size": args.batch_size,
        "timed_steps": args.steps,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in ours.parameters()),
        "vocab": vocab,
        "ours_samples_per_s": round(rate["ours"], 2),
        "baseline_samples_per_s": round(rate["base"], 2),
        "speedup": round(rate["ours"] / rate["base"], 2),
        "speedup_cpu_time": round(cpu_rate["ours"] / cpu_rate["base"], 2),
        "ours_mean_input_tokens": round(float(np.mean(src_tokens)), 1),
        "dataset_mean_input_tokens": round(float(lengths.float().mean()) * n_cols + 1, 1),
        "baseline_input_tokens": base_ids.shape[1],
        "ours_gflop_per_sample": round(flops["ours"] / samples["ours"] / 1e9, 4),
        "baseline_gflop_per_sample": round(flops["base"] / samples["base"] / 1e9, 4),
        "flop_counter_vs_analytic": round(counter.get_total_flops() / analytic, 3),
        "matmul_peak_gflops": round(peak, 1),
        "ours_gflops": round(achieved, 1),
        "ours_fraction_of_peak": round(achieved / peak, 3),
    }
    result["environment"] = environment(torch.device("cpu"))  # git commit, versions, machine
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
