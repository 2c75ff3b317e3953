"""Users per second of our constrained beam search against Hugging Face ``generate``.

Same model, same users, same trie, beam 20, top 10. The model is a trained one saved by
``python -m benchmark run ... --save-models DIR`` (``--checkpoint DIR/<dataset>/<model>/<run>.pt``:
its T5 and its SIDs), or without ``--checkpoint`` a TIGER-sized T5 with random weights over
random Beauty-sized SIDs (3 x 256 + collision digit). Random weights cost ``generate`` the same,
but not ours: our last step skips beams that cannot reach the top 10, and a random model's
flat distributions leave almost none to skip. Ours decodes users
sorted by history length (so little padding) in batches of ``--batch-size``; ``generate`` with
``prefix_allowed_tokens_fn`` decodes ``--ref-users`` of the same users (unsorted, as the
reference implementations do) in batches of ``--ref-batch-size``. The top-10 lists of those
users must be identical. Matmul GFLOP per user of both, counted on the first ``generate`` batch,
separate what the saved work explains (no per-beam cross-attention keys, no padding, one first
step per user) from overheads.

    python -m scripts.bench_decode --synthetic --users 512 --ref-users 32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.cache import load_safely
from benchmark.records import environment
from models.components.beam_search import PrefixTrie, constrained_beam_search, reference_generate
from models.components.semantic_ids import SemanticIDTable
from models.components.seq2seq import SIDRecommender, T5Spec, length_bucketed_batches
from scripts.bench_common import Stopwatch, add_data_args, load_data, random_sids


def load_decoder(path: Path, n_items: int) -> tuple[SIDRecommender, SemanticIDTable]:
    """The trained T5 and SID table of a ``--save-models`` checkpoint."""
    try:
        saved = load_safely(path)  # a saved model is data: nothing in it may run code
    except ValueError as exc:
        raise SystemExit(f"error: cannot load {path} as a saved model ({exc})") from None
    if not isinstance(saved, dict) or "decoding" not in saved:
        raise SystemExit(
            f"{path}: no 'decoding' entry: not a semantic-ID model that decodes from hard IDs "
            "(UniGRec decodes from soft code embeddings)"
        )
    state = saved["decoding"]
    if len(state["sid_codes"]) != n_items + 1:
        raise SystemExit(
            f"{path} holds SIDs for {len(state['sid_codes']) - 1} items, the dataset has "
            f"{n_items}: pass the --dataset it was trained on"
        )
    table = SemanticIDTable(state["sid_codes"], state["level_sizes"])
    model = SIDRecommender(
        T5Spec(**state["t5_spec"]), table.level_sizes, state.get("unused_tokens", 0)
    )
    model.load_state_dict(state["net"])
    return model.eval(), table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser)
    parser.add_argument("--users", type=int, default=512, help="users decoded by ours")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--ref-users", type=int, default=32, help="users decoded by generate")
    parser.add_argument("--ref-batch-size", type=int, default=32, help="LETTER evaluates 32")
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="a trained model from run --save-models"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    n_items, _, _, tests = load_data(args)
    if args.checkpoint:
        model, table = load_decoder(args.checkpoint, n_items)
    else:
        table = random_sids(n_items, seed=args.seed)
        model = SIDRecommender(T5Spec(), table.level_sizes).eval()
    item_tokens = table.tokens()
    trie = PrefixTrie.from_codes(table.codes, table.level_sizes)

    gen = torch.Generator().manual_seed(args.seed)
    users = torch.randperm(len(tests), generator=gen)[: args.users].tolist()
    histories = [tests[u] for u in users]
    lengths = torch.tensor([len(h) for h in histories])
    order = torch.cat(length_bucketed_batches(lengths, len(histories), shuffle=False))
    ranked = torch.zeros(len(histories), args.topk, dtype=torch.long)
    rows = [0] * len(table.level_sizes)  # decoder rows per step: shows the last-step pruning
    ours = Stopwatch()
    for idx in order.split(args.batch_size):
        with ours:
            ids, mask = model.encode_inputs([histories[i] for i in idx], item_tokens)
            ranked[idx] = constrained_beam_search(
                model, ids, mask, trie, args.beam, args.topk, rows_per_step=rows
            )[0]

    ref_users = torch.arange(min(args.ref_users, len(histories)))  # a random subset, unsorted
    ref = torch.zeros(len(ref_users), args.topk, dtype=torch.long)
    generate = Stopwatch()
    for pos in range(0, len(ref_users), args.ref_batch_size):
        idx = ref_users[pos : pos + args.ref_batch_size]
        with generate:
            ids, mask = model.encode_inputs([histories[i] for i in idx], item_tokens)
            ref[pos : pos + len(idx)] = reference_generate(
                model, ids, mask, trie, args.beam, args.topk
            )[0]
    identical = (ref == ranked[ref_users]).all(1)
    assert identical.all(), f"{int((~identical).sum())} of {len(ref_users)} users differ"

    probe = [histories[i] for i in ref_users[: args.ref_batch_size]]
    ids, mask = model.encode_inputs(probe, item_tokens)
    gflop = {}
    for name, search in (("ours", constrained_beam_search), ("generate", reference_generate)):
        with FlopCounterMode(display=False) as counter:
            search(model, ids, mask, trie, args.beam, args.topk)
        gflop[name] = counter.get_total_flops() / 1e9 / len(probe)

    ours_rate, ref_rate = len(histories) / ours.wall, len(ref_users) / generate.wall
    cpu_ratio = (len(histories) / ours.cpu) / (len(ref_users) / generate.cpu)
    result = {
        "dataset": "synthetic-beauty" if args.synthetic else args.dataset,
        "model": str(args.checkpoint) if args.checkpoint else "random weights",
        "threads": torch.get_num_threads(),
        "beam": args.beam,
        "topk": args.topk,
        "level_sizes": table.level_sizes,
        "ours_users": len(histories),
        "ours_batch_size": args.batch_size,
        "ours_users_per_s": round(ours_rate, 1),
        "generate_users": len(ref_users),
        "generate_batch_size": args.ref_batch_size,
        "generate_users_per_s": round(ref_rate, 2),
        "speedup": round(ours_rate / ref_rate, 1),
        "speedup_cpu_time": round(cpu_ratio, 1),
        "identical_top_k_users": int(identical.sum()),
        "ours_decoder_rows_per_user_per_step": [round(r / len(histories), 2) for r in rows],
        "ours_gflop_per_user": round(gflop["ours"], 3),
        "generate_gflop_per_user": round(gflop["generate"], 3),
    }
    result["environment"] = environment(torch.device("cpu"))  # git commit, versions, machine
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
