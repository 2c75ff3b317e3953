"""Where one training epoch of a model spends its wall-clock time, through the harness's own code
path (the same ``run`` would take, one epoch, then validation):

    python -m scripts.profile_epoch --model tiger --dataset office --data-dir DATA --threads 1

Phases are timed by wrapping the functions that make them (the forward pass is the model's
``training_loss``; dropout is also shown on its own, inside the forward pass), so the shares
are exact wall-clock sums, not samples. ``--ops N`` also runs ``torch.profiler`` and reports
the N operators with the most self CPU time (e.g. torch's own ``bernoulli_`` inside
``scaled_dot_product_attention``'s attention dropout). Ends with a ``RESULT {json}`` line (with
environment).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
FIRST: dict[str, float] = {}  # when each phase first started


def timed(name: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if name != "forward" and "forward" not in FIRST:  # e.g. the tokenizer's training
            return function(*args, **kwargs)
        started = time.perf_counter()
        FIRST.setdefault(name, started)
        try:
            return function(*args, **kwargs)
        finally:
            TIMES[name] += time.perf_counter() - started
            CALLS[name] += 1

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiger")
    parser.add_argument("--dataset", default="office")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--ops",
        type=int,
        default=0,
        help="also report the N operators with most self CPU time (torch.profiler)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from benchmark.records import environment
    from benchmark.runner import HarnessContext, run_batch
    from models.components.dropout import FastDropout
    from models.generative import GenerativeRecommender

    # the phases
    GenerativeRecommender.training_loss = timed("forward", GenerativeRecommender.training_loss)
    torch.Tensor.backward = timed("backward", torch.Tensor.backward)
    torch.optim.AdamW.step = timed("optimizer", torch.optim.AdamW.step)
    torch.nn.utils.clip_grad_norm_ = timed("clip", torch.nn.utils.clip_grad_norm_)
    FastDropout.forward = timed("dropout (in forward)", FastDropout.forward)
    HarnessContext.validate = timed("validation", HarnessContext.validate)
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    with (
        tempfile.TemporaryDirectory() as results,
        profiler if args.ops else contextlib.nullcontext(),
    ):
        run_batch(
            [args.model],
            [args.dataset],
            profile=args.profile,
            data_dir=args.data_dir,
            results_dir=Path(results),
            overrides=[o for o in args.overrides if o.split("=")[0] != "epochs"] + ["epochs=1"],
            quiet=True,
            force=True,
        )
    epoch = FIRST["validation"] - FIRST["forward"]  # the training loop's wall-clock
    steps = TIMES["forward"] + TIMES["backward"] + TIMES["optimizer"] + TIMES["clip"]
    total = epoch + TIMES["validation"]
    rows = {name: TIMES[name] for name in ("forward", "dropout (in forward)", "backward")}
    rows |= {name: TIMES[name] for name in ("optimizer", "clip")}
    rows["other (batching, copies)"] = epoch - steps
    rows["validation"] = TIMES["validation"]
    print(f"{args.model} on {args.dataset}, one {args.profile} epoch, {args.threads} thread(s):")
    for name, seconds in rows.items():
        print(f"  {name:22} {seconds:8.1f} s  {100 * seconds / total:5.1f}%  ({CALLS[name]} calls)")
    print(f"  {'epoch + validation':22} {total:8.1f} s")
    ops = []
    if args.ops:  # under the profiler the phases above include its overhead
        events = sorted(profiler.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total_self = sum(e.self_cpu_time_total for e in events)
        print("  top operators by self CPU time (all of training and validation):")
        for event in events[: args.ops]:
            seconds = event.self_cpu_time_total / 1e6
            share = 100 * event.self_cpu_time_total / total_self
            print(f"    {event.key:50} {seconds:7.2f} s  {share:5.1f}%  ({event.count} calls)")
            ops.append({"op": event.key, "self_seconds": round(seconds, 3), "calls": event.count})
    result = {
        "model": args.model,
        "dataset": args.dataset,
        "profile": args.profile,
        "threads": args.threads,
        "seconds": {name: round(seconds, 2) for name, seconds in rows.items()},
        "training_steps": CALLS["forward"],
        "top_ops": ops,
        "environment": environment(torch.device("cpu")),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
