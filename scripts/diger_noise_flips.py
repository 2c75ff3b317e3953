"""How often DIGER's Gumbel noise changes an item's code, with the authors' min-max centred
logits and with raw negative distances (METHODS.md Sec. 6), on the cached pretrained RQ-VAE.

DRIL feeds the recommender ``argmax(l + g)``: when ``g`` (Gumbel, scale ``sigma_init``) is large
against the gap between an item's nearest and second-nearest codeword, a noised item's input
code is close to random, while the recommender must decode its clean ID. Prints and writes
(``--out``) the share of noised items whose code changes, per level, for a few batch sizes
(centring is over the batch), with the median level-1 gap and the logit span.

    python scripts/diger_noise_flips.py --dataset office --data-dir ../shared/data \
        --out results/reference/diger-noise-flips-office.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmark.cache import DiskCache
from benchmark.data import Protocol, cache_root, load_sequence_data
from benchmark.records import environment
from benchmark.runner import HarnessContext, build_config, resolve_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="office")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seed", type=int, default=0, help="the tokenizer's seed")
    parser.add_argument("--draws", type=int, default=20, help="noise draws per batch")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = load_sequence_data(args.dataset, args.data_dir)
    cls = resolve_model("diger")
    config = build_config(cls, args.profile, {})
    model = cls(config)
    cache = DiskCache(cache_root() / "artifacts")
    ctx = HarnessContext(model, data, Protocol(), args.seed, cache, torch.device("cpu"), quiet=True)
    model.build_semantic_ids(data, ctx)  # the pretrained RQ-VAE (cached after its first build)
    quantizer = model.tokenizer.train().quantizer
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    with torch.no_grad():
        z = model.tokenizer.encode(model.inputs)
        rows = []
        for size in (256, len(z)):
            items = torch.randperm(len(z), generator=generator)[:size]
            for centre in (True, False):
                quantizer.centre_logits = centre
                clean = quantizer(z[items], noise_scale=0.0)
                changed = torch.stack(
                    [
                        (quantizer(z[items], noise_scale=config.sigma_init).codes != clean.codes)
                        .float()
                        .mean(0)
                        for _ in range(args.draws)
                    ]
                ).mean(0)
                level1 = clean.logits[:, 0]
                top2 = level1.topk(2, dim=1).values
                rows.append(
                    {
                        "batch_items": size,
                        "centred_logits": centre,
                        "changed_per_level": [round(v, 4) for v in changed.tolist()],
                        "median_level1_gap": round((top2[:, 0] - top2[:, 1]).median().item(), 4),
                        "level1_logit_span": round((level1.max() - level1.min()).item(), 2),
                    }
                )
                print(json.dumps(rows[-1]))
    result = {
        "dataset": args.dataset,
        "fingerprint": data.fingerprint,
        "profile": args.profile,
        "seed": args.seed,
        "noise_scale": config.sigma_init,
        "draws": args.draws,
        "rows": rows,
        "environment": environment(torch.device("cpu")),
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
