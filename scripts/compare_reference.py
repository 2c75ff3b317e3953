"""Our TIGER trainer against the LETTER authors' TIGER trainer, side by side on the same inputs.

    python -m scripts.compare_reference --reference /path/to/LETTER --dataset office \\
        --size quick --epochs 20 --seeds 0,1 --data-dir ../shared/data

``--reference`` is a checkout of HonghuiBao2000/LETTER (its ``LETTER-TIGER/`` folder is the
reference trainer; it is read, copied into the work folder and patched there, never committed).
What the script does, each step skipped when its output exists, so a killed comparison resumes:

1. **Environment.** A virtual environment with the authors' pins (transformers 4.41.2,
   accelerate 0.30.1, sentencepiece; ``--torch`` names the torch to install).
2. **Their code, on the CPU.** ``LETTER-TIGER`` copied and patched (:data:`PATCHES`: the
   hard-coded CUDA devices, ``t5-small`` downloaded at test time, DataLoader worker processes);
   a base-model folder with their tokenizer files and a ``config.json`` of the compared size.
3. **Same inputs.** Their ``<Name>.inter.json`` is written from *our* split (each user's items,
   oldest first, as our loader sees them after filtering) and checked against the dataset's own
   file; the semantic IDs are ours (TIGER's RQ-VAE at ``--size``'s codebooks, ``--id-seed``),
   exported in their index format and read back by ours with ``tokenizer=external``.
4. **Same settings.** T5 size, AdamW (lr, weight decay), batch, warmup (their ratio, as steps
   on our side), schedule, epochs (no early stop on either side: patience = epochs), history
   cap 20, beam 20 on every test user.
5. **Both sides, every seed.** Ours: ``python -m benchmark run`` (records under
   ``results/reference/runs``). Theirs: ``finetune.py`` via ``scripts/reference/
   letter_tiger_train.py`` (adds a per-epoch validation curve with their decoding), then their
   ``test.py`` on the checkpoint their trainer keeps.
6. **Report.** ``results/reference/<dataset>-tiger-<size>.json``: per-seed test Recall@10,
   NDCG@10, seconds per epoch and per evaluation, validation curves, the environments, and the
   verdict (mean difference within the larger seed spread, or within 10% relative).

``--side ours`` / ``--side reference`` run one side only (two processes, one core each);
``--side report`` only writes the report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "scripts" / "reference" / "letter_tiger_train.py"
REFERENCE_PINS = ["transformers==4.41.2", "accelerate==0.30.1", "sentencepiece", "numpy<2"]

# T5 sizes (ours: the config fields; theirs: T5Config fields)
SIZES: dict[str, dict[str, Any]] = {
    # our TIGER ``quick`` profile
    "quick": {"num_layers": 2, "d_model": 64, "d_ff": 256, "num_heads": 4, "d_kv": 16},
    # TIGER Sec. 4.1 = LETTER-TIGER's ckpt/TIGER/config.json
    "tiger": {"num_layers": 4, "d_model": 128, "d_ff": 1024, "num_heads": 6, "d_kv": 64},
}
CODEBOOKS = {"quick": 64, "tiger": 256}  # our RQ-VAE's codebooks at each size (profile values)

# (file, old, new): each must match exactly once; why in the comment
PATCHES: list[tuple[str, str, str]] = [
    # no GPU here: the device is hard-coded
    ("finetune.py", 'device = torch.device("cuda", local_rank)', 'device = torch.device("cpu")'),
    ("test.py", 'device = torch.device("cuda",args.gpu_id)', 'device = torch.device("cpu")'),
    ("test.py", "        device_map=device_map,\n", ""),
    # test.py loads its config and tokenizer from the hub's t5-small (no downloads here); the
    # trainer itself used --base_model, whose tokenizer files ship in their ckpt/TIGER
    ("test.py", 'from_pretrained("t5-small")', "from_pretrained(args.base_model)"),
    ("test.py", '\n        "t5-small",\n', "\n        args.base_model,\n"),
    # four loader processes on a 2-core machine; the order of test batches changes no metric
    ("test.py", "num_workers=4, pin_memory=True", "num_workers=0, pin_memory=False"),
]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work or default_work(args)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = shared_settings(args)
    venv = Path(args.venv or work.parent / "letter-venv")
    if args.side in ("both", "reference"):
        python = build_environment(venv, [args.torch, *REFERENCE_PINS])
        code = patched_copy(Path(args.reference), work / "LETTER-TIGER")
        base = base_model(Path(args.reference), work / "base-model", args.size)
    if args.side != "report":
        inputs = write_inputs(args, work)
        settings["warmup_steps"] = warmup_steps(inputs["train_pairs"], settings)
        check_same_settings(work, settings)
        (work / "settings.json").write_text(json.dumps(settings, indent=1))
    if args.side in ("both", "ours"):
        for seed in seeds:
            run_ours(args, inputs, settings, seed)
    if args.side in ("both", "reference"):
        for seed in seeds:
            run_reference(args, work, code, base, python, inputs, settings, seed)
    if args.side in ("both", "report"):
        path = write_report(args, work, venv, seeds)
        print(f"compare_reference: wrote {path}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", help="checkout of HonghuiBao2000/LETTER (not for the report)")
    p.add_argument("--dataset", default="office")
    p.add_argument("--data-dir", default=os.environ.get("GENREC_DATA_DIR"))
    p.add_argument("--size", choices=sorted(SIZES), default="quick")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--id-seed", type=int, default=0, help="seed of the exported semantic IDs")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.01)
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--valid-every",
        type=int,
        default=4,
        help="epochs between the reference's validation decodes (each costs minutes)",
    )
    p.add_argument("--side", choices=["both", "ours", "reference", "report"], default="both")
    p.add_argument(
        "--ours-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an ablation of our side (e.g. unused_tokens=32100), recorded under its own label "
        "and reported beside the plain comparison",
    )
    p.add_argument("--work", help="work folder (default ~/.cache/genrec-bench/reference/...)")
    p.add_argument("--venv", help="reference environment (default: beside the work folder)")
    p.add_argument("--torch", default="torch", help="pip requirement or wheel for its torch")
    args = p.parse_args(argv)
    needs_checkout = args.side in ("both", "reference")
    if (
        needs_checkout
        and not (Path(args.reference or ".") / "LETTER-TIGER" / "finetune.py").is_file()
    ):
        p.error(
            f"--reference {args.reference}: no LETTER-TIGER/finetune.py there; pass a "
            "checkout of https://github.com/HonghuiBao2000/LETTER"
        )
    return args


def default_work(args: argparse.Namespace) -> Path:
    from benchmark.data import cache_root

    return cache_root() / "reference" / f"{args.dataset}-tiger-{args.size}"


def shared_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "size": args.size,
        **SIZES[args.size],
        "dropout": 0.1,
        "optimizer": "AdamW",
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "batch_size": args.batch_size,
        "warmup_ratio": args.warmup_ratio,
        "schedule": args.schedule,
        "epochs": args.epochs,
        "max_history": 20,
        "beam": 20,
        "id_seed": args.id_seed,
        "codebook_size": CODEBOOKS[args.size],
    }


def check_same_settings(work: Path, settings: dict[str, Any]) -> None:
    """A work folder holds one comparison: its cached inputs, reference runs and our records
    were made under the settings it saved. Other flags need another folder, or the report would
    state new settings over results trained under the old ones."""
    path = work / "settings.json"
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    differ = sorted(k for k in {**saved, **settings} if saved.get(k) != settings.get(k))
    if differ:
        raise SystemExit(
            f"error: {work} holds a comparison made with other settings ({', '.join(differ)} "
            f"differ: {', '.join(f'{k} {saved.get(k)!r}' for k in differ)}); give these flags "
            "their own --work folder, or delete that one to start over"
        )


def warmup_steps(train_pairs: int, settings: dict[str, Any]) -> int:
    """Their warmup (``ceil(ratio x total steps)``, as transformers computes it) in steps."""
    total = settings["epochs"] * math.ceil(train_pairs / settings["batch_size"])
    return math.ceil(settings["warmup_ratio"] * total)


# ------------------------------------------------------------------ reference side set-up
def build_environment(venv: Path, requirements: list[str]) -> Path:
    """A virtual environment with ``requirements`` installed (once); its python."""
    python = venv / "bin" / "python"
    ready = venv / ".genrec-ready"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
        ready.write_text("ok\n")
    return python


def copy_and_patch(
    source: Path,
    target: Path,
    patches: list[tuple[str, str, str]],
    written_against: str,
    ignore: tuple[str, ...] = (),
) -> Path:
    """``source`` copied to ``target`` (once) with each ``(file, old, new)`` applied; a patch
    whose ``old`` does not occur exactly once means the checkout changed: refused, named."""
    if not (target / ".genrec-patched").exists():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(*ignore))
        for name, old, new in patches:
            path = target / name
            text = path.read_text(encoding="utf-8")
            if text.count(old) != 1:
                raise SystemExit(
                    f"error: {path}: expected one {old!r} to patch, found {text.count(old)}; "
                    f"the reference checkout changed (this script was written against "
                    f"{written_against})"
                )
            path.write_text(text.replace(old, new), encoding="utf-8")
        (target / ".genrec-patched").write_text("ok\n")
    return target


def patched_copy(reference: Path, target: Path) -> Path:
    return copy_and_patch(reference / "LETTER-TIGER", target, PATCHES, "LETTER 8d0154e")


def base_model(reference: Path, target: Path, size: str) -> Path:
    """Their ckpt/TIGER (tokenizer files + T5 config) at the compared size."""
    target.mkdir(parents=True, exist_ok=True)
    source = reference / "LETTER-TIGER" / "ckpt" / "TIGER"
    for f in source.iterdir():
        if f.name != "config.json":
            shutil.copy2(f, target / f.name)
    config = json.loads((source / "config.json").read_text())
    s = SIZES[size]
    config.update(
        num_layers=s["num_layers"],
        num_decoder_layers=s["num_layers"],
        d_model=s["d_model"],
        d_ff=s["d_ff"],
        num_heads=s["num_heads"],
        d_kv=s["d_kv"],
        dropout_rate=0.1,
    )
    (target / "config.json").write_text(json.dumps(config, indent=2))
    return target


# ------------------------------------------------------------------ shared inputs
def write_inputs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """``<work>/data/<Name>/<Name>.inter.json`` from our split and ``<Name>.ours.index.json``
    (our IDs); the same index file is what our side reads as ``sid_file``."""
    done = work / "inputs.json"
    if done.exists():
        return json.loads(done.read_text())
    from benchmark.data import load_sequence_data
    from scripts.export_sids import export_letter_index

    data = load_sequence_data(args.dataset, args.data_dir)
    name = data.name.capitalize()
    folder = work / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    sequences = user_sequences(data)
    tokens = data.item_tokens
    inters = {
        str(u): [int(tokens[i]) if tokens[i].isdigit() else tokens[i] for i in seq]
        for u, seq in sequences.items()
    }
    (folder / f"{name}.inter.json").write_text(json.dumps(inters))
    index_path = folder / f"{name}.ours.index.json"
    export_letter_index(
        "tiger",
        args.dataset,
        "quick",
        args.id_seed,
        args.data_dir,
        {"codebook_size": str(CODEBOOKS[args.size])},
        index_path,
    )
    inputs = {
        "name": name,
        "data_path": str(work / "data"),
        "index_file": ".ours.index.json",
        "sid_file": str(index_path),
        "fingerprint": data.fingerprint,
        "users": len(sequences),
        "items": data.n_items,
        "train_pairs": int(len(data.train_targets)),
        "same_as_dataset_file": same_as_source(args, name, inters),
    }
    done.write_text(json.dumps(inputs, indent=1))
    return inputs


def user_sequences(data) -> dict[int, list[int]]:
    """Each user's items, oldest first, rebuilt from the split: the first training history's
    item, every training target, then the validation and test items."""
    sequences: dict[int, list[int]] = {}
    for user, history, target in zip(
        data.train_users, data.train_histories, data.train_targets, strict=True
    ):
        seq = sequences.setdefault(int(user), [history[0]])
        seq.append(int(target))
    for users, targets in (
        (data.valid_users, data.valid_targets),
        (data.test_users, data.test_targets),
    ):
        for user, target in zip(users, targets, strict=True):
            sequences[int(user)].append(int(target))
    return sequences


def same_as_source(args: argparse.Namespace, name: str, inters: dict[str, list]) -> bool | None:
    """Whether the rebuilt sequences equal the dataset's own ``<Name>.inter.json`` (as a set of
    sequences; user keys differ); None when the dataset has no such file."""
    from benchmark.datasets import default_data_dir

    root = Path(args.data_dir) if args.data_dir else default_data_dir()
    source = root / args.dataset / f"{name}.inter.json"
    if not source.is_file():
        return None

    def canonical(sequences: dict) -> list[str]:
        return sorted(json.dumps([int(i) for i in seq]) for seq in sequences.values())

    return canonical(json.loads(source.read_text())) == canonical(inters)


# ------------------------------------------------------------------ the two sides
LABEL = "tiger-vs-letter-reference"


def ours_results_dir() -> Path:
    """``--results-dir`` of our side: records land in ``results/reference/runs/<dataset>/tiger``,
    apart from the leaderboard's ``results/runs``."""
    return REPO / "results" / "reference"


def our_overrides(size: str, inputs: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    """``--set`` values of our side (the report finds our records by them)."""
    return {
        "tokenizer": "external",
        "sid_file": inputs["sid_file"],
        **{k: s[k] for k in SIZES[size]},
        "dropout": s["dropout"],
        "lr": s["lr"],
        "weight_decay": s["weight_decay"],
        "batch_size": s["batch_size"],
        "warmup_steps": s["warmup_steps"],
        "lr_schedule": s["schedule"],
        "epochs": s["epochs"],
        "patience": s["epochs"],
        "beam_size": s["beam"],
        "train_pairs_per_user": 0,
    }


def run_ours(args, inputs: dict[str, Any], s: dict[str, Any], seed: int) -> None:
    sets = our_overrides(args.size, inputs, s)
    cmd = [
        sys.executable,
        "-m",
        "benchmark",
        "run",
        "--models",
        "tiger",
        "--dataset",
        args.dataset,
        "--profile",
        "quick",
        "--seeds",
        str(seed),
        "--threads",
        str(args.threads),
        "--results-dir",
        str(ours_results_dir()),
        "--label",
        variant_label(args.ours_set),
        "--max-history",
        str(s["max_history"]),
        "--quiet",
    ]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    for pair in args.ours_set:
        cmd += ["--set", pair]
    subprocess.run(cmd, check=True, cwd=REPO)


def ablation_labels(dataset: str) -> list[str]:
    """Labels of our ablation records (``--ours-set``) for ``dataset``."""
    from benchmark.records import read_record

    labels = set()
    for path in (ours_results_dir() / "runs" / dataset / "tiger").glob("*.json"):
        label = ((read_record(path) or {}).get("spec") or {}).get("label") or ""
        if label.startswith(LABEL + " ("):
            labels.add(label)
    return sorted(labels)


def variant_label(ours_set: list[str]) -> str:
    """Label of our records: the plain comparison, or an ablation of ours (``--ours-set``)."""
    return f"{LABEL} ({', '.join(ours_set)})" if ours_set else LABEL


def run_reference(args, work, code, base, python, inputs, s, seed: int) -> None:
    out = work / f"reference-seed{seed}"
    out.mkdir(exist_ok=True)
    test_file = out / "test.json"
    if test_file.exists():
        return
    env = {
        **os.environ,
        "WANDB_DISABLED": "true",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "CUDA_VISIBLE_DEVICES": "",
    }
    data = [
        "--data_path",
        inputs["data_path"],
        "--dataset",
        inputs["name"],
        "--index_file",
        inputs["index_file"],
        "--max_his_len",
        str(s["max_history"]),
        "--base_model",
        str(base),
        "--seed",
        str(seed),
    ]
    ckpt = out / "ckpt"
    timing = out / "timing.json"
    if not timing.exists():  # written when their trainer returned
        # a killed run continues from its last epoch checkpoint (their --resume_from_checkpoint)
        saved = sorted(ckpt.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        resume = ["--resume_from_checkpoint", str(saved[-1])] if saved else []
        train = [
            str(python),
            str(DRIVER),
            *data,
            "--output_dir",
            str(ckpt),
            "--curve_file",
            str(out / "curve.json"),
            "--valid_every",
            str(args.valid_every),
            "--epochs",
            str(s["epochs"]),
            "--learning_rate",
            str(s["lr"]),
            "--per_device_batch_size",
            str(s["batch_size"]),
            "--gradient_accumulation_steps",
            "1",
            "--weight_decay",
            str(s["weight_decay"]),
            "--warmup_ratio",
            str(s["warmup_ratio"]),
            "--lr_scheduler_type",
            "cosine" if s["schedule"] == "cosine" else "constant_with_warmup",
            *resume,
        ]
        started = time.time()
        with open(out / "train.log", "a") as log:
            subprocess.run(train, check=True, cwd=code, env=env, stdout=log, stderr=log)
        timing.write_text(json.dumps({"train_wall_seconds": round(time.time() - started, 1)}))
    test = [
        str(python),
        "test.py",
        *data,
        "--ckpt_path",
        str(ckpt),
        "--results_file",
        str(test_file),
        "--test_batch_size",
        "32",
        "--num_beams",
        str(s["beam"]),
        "--metrics",
        "hit@10,ndcg@10",
    ]
    started = time.time()
    with open(out / "test.log", "a") as log:
        subprocess.run(test, check=True, cwd=code, env=env, stdout=log, stderr=log)
    times = json.loads(timing.read_text()) if timing.exists() else {}
    times["test_wall_seconds"] = round(time.time() - started, 1)
    timing.write_text(json.dumps(times))


# ------------------------------------------------------------------ report
def write_report(args: argparse.Namespace, work: Path, venv: Path, seeds: list[int]) -> Path:
    import torch

    from benchmark.atomic import write_json_atomic, write_text_atomic
    from benchmark.records import environment

    settings = json.loads((work / "settings.json").read_text())
    inputs = json.loads((work / "inputs.json").read_text())
    expected = our_overrides(args.size, inputs, settings)
    ours, ours_curves, ours_env = our_side(args.dataset, seeds, expected, LABEL)
    ref, ref_curves = reference_side(work, seeds)
    verdict = {m: verdict_for(ours[m], ref[m]) for m in ("recall@10", "ndcg@10")}
    variants = {}
    for label in ablation_labels(args.dataset):
        # an ablation is reported with the seeds it has finished so far
        side, curves, _ = our_side(args.dataset, seeds, expected, label, skip_missing=True)
        if not side["seeds"]:
            continue
        # against the reference on the same seeds (the ablation may have fewer)
        same = {
            m: [ref[m][seeds.index(s)] for s in side["seeds"]] for m in ("recall@10", "ndcg@10")
        }
        side["verdict"] = {
            m: verdict_for(side[m], same[m], max(ref[m]) - min(ref[m])) for m in same
        }
        variants[label] = {**side, "curves": curves}
    report = {
        "dataset": args.dataset,
        "method": "tiger",
        "size": args.size,
        "epochs": settings["epochs"],
        "seeds": seeds,
        "config": settings,
        "inputs": inputs,
        "ours": ours,
        "reference": ref,
        "verdict": verdict,
        "passed": all(v["passed"] for v in verdict.values()),
        "ours_ablations": variants,
        "curves": {"ours": ours_curves, "reference": ref_curves},
        "environment": {
            "ours": ours_env,
            "reference": reference_environment(venv),
            "report_written_by": environment(torch.device("cpu")),
        },
        "selection": {
            "ours": "best validation NDCG@10 epoch (beam 20)",
            "reference": "best validation loss epoch (their load_best_model_at_end)",
        },
    }
    path = REPO / "results" / "reference" / f"{args.dataset}-tiger-{args.size}.json"
    write_json_atomic(path, report)
    write_text_atomic(path.with_suffix(".md"), markdown_table(report))
    return path


def markdown_table(report: dict[str, Any]) -> str:
    """The README's fidelity table: test metrics per seed, mean, spread, verdict and cost."""
    ours, ref = report["ours"], report["reference"]
    rows = [
        "| seed | ours Recall@10 | reference Recall@10 | ours NDCG@10 | reference NDCG@10 |",
        "|---|---|---|---|---|",
    ]
    for i, seed in enumerate(report["seeds"]):
        values = (ours["recall@10"][i], ref["recall@10"][i], ours["ndcg@10"][i], ref["ndcg@10"][i])
        rows.append(f"| {seed} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    for name, stat in (("mean", statistics.mean), ("spread", lambda v: max(v) - min(v))):
        values = [stat(side[m]) for m in ("recall@10", "ndcg@10") for side in (ours, ref)]
        rows.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    verdict = report["verdict"]
    lines = [
        *rows,
        "",
        "Verdict: "
        + "; ".join(
            f"{m} {v['relative']:+.1%} (difference {v['difference']:+.4f}, larger spread "
            f"{v['larger_spread']:.4f}): {'pass' if v['passed'] else 'FAIL'}"
            for m, v in verdict.items()
        )
        + ".",
        "",
        "| side | train s/epoch | validation s | test s | best epoch |",
        "|---|---|---|---|---|",
    ]
    for name, side in (("ours", ours), ("reference", ref)):
        lines.append(
            f"| {name} | {statistics.mean(side['seconds_per_epoch']):.0f} | "
            f"{statistics.mean(side['valid_seconds_per_epoch']):.0f} | "
            f"{statistics.mean(side['test_seconds']):.0f} | "
            f"{', '.join(str(e) for e in side['best_epoch'])} |"
        )
    for label, side in report.get("ours_ablations", {}).items():
        lines += [
            "",
            f"Ablation `{label[len(LABEL) + 1 :]}` of ours (seeds {side['seeds']}): "
            + "; ".join(
                f"{m} {statistics.mean(side[m]):.4f} vs reference "
                f"{v['reference_mean']:.4f} ({v['relative']:+.1%}, "
                f"{'pass' if v['passed'] else 'FAIL'})"
                for m, v in side["verdict"].items()
            )
            + f"; {statistics.mean(side['seconds_per_epoch']):.0f} s per epoch.",
        ]
    lines += ["", *curve_table(report)]
    return "\n".join(lines) + "\n"


def curve_table(report: dict[str, Any]) -> list[str]:
    """Validation Recall@10 / NDCG@10 per seed at the epochs both sides decoded."""
    seeds = report["seeds"]
    curves = report.get("curves", {})

    def by_epoch(side: str, seed: int) -> dict[int, dict]:
        entries = curves.get(side, {}).get(seed) or curves.get(side, {}).get(str(seed)) or []
        return {e["epoch"]: e for e in entries if e.get("recall@10") is not None}

    ours = {seed: by_epoch("ours", seed) for seed in seeds}
    ref = {seed: by_epoch("reference", seed) for seed in seeds}
    epochs = sorted(set.intersection(*(set(ref[s]) & set(ours[s]) for s in seeds)))
    if not epochs:
        return []
    head = " | ".join(f"{side} seed {s}" for side in ("ours", "reference") for s in seeds)
    rows = [
        f"| epochs trained | {head} |",
        "|---" * (1 + 2 * len(seeds)) + "|",
    ]
    for epoch in epochs:
        cells = [
            f"{side[s][epoch]['recall@10']:.4f} / {side[s][epoch]['ndcg@10']:.4f}"
            for side in (ours, ref)
            for s in seeds
        ]
        rows.append(f"| {epoch + 1} | " + " | ".join(cells) + " |")
    return ["Validation Recall@10 / NDCG@10 (beam 20, every validation user):", "", *rows]


# what each side reports, one list entry per seed
SIDE_FIELDS = (
    "recall@10",
    "ndcg@10",
    "seconds_per_epoch",
    "valid_seconds_per_epoch",
    "test_seconds",
    "best_epoch",
)


def our_side(
    dataset: str,
    seeds: list[int],
    expected: dict[str, Any],
    label: str,
    skip_missing: bool = False,
    method: str = "tiger",
) -> tuple:
    """Per-seed lists (plus run ids and the seeds found), validation curves and environment of
    our ``method`` records under ``label`` whose config has every ``expected`` value (the
    ``--set`` values of our side); a seed without one is an error unless ``skip_missing``."""
    ours: dict[str, list] = {k: [] for k in (*SIDE_FIELDS, "run_id", "seeds")}
    curves, env = {}, None
    folder = ours_results_dir() / "runs" / dataset / method
    for seed in seeds:
        record = find_our_record(folder, seed, expected, label)
        if record is None:
            if skip_missing:
                continue
            raise SystemExit(
                f"error: no finished run {label!r} of ours for seed {seed} under {folder}; run "
                "--side ours first"
            )
        ours["seeds"].append(seed)
        curve = record["curve"]
        ours["recall@10"].append(record["test"]["recall@10"])
        ours["ndcg@10"].append(record["test"]["ndcg@10"])
        ours["seconds_per_epoch"].append(train_seconds_per_epoch(curve))
        ours["valid_seconds_per_epoch"].append(statistics.mean(e["valid_seconds"] for e in curve))
        ours["test_seconds"].append(record["diagnostics"]["eval_seconds"])
        ours["best_epoch"].append(record["diagnostics"].get("best_epoch"))
        ours["run_id"].append(record["run_id"])
        keep = ("epoch", "recall@10", "ndcg@10", "loss")
        curves[seed] = [{k: e.get(k) for k in keep} for e in curve]
        env = record["environment"]
    return ours, curves, env


def reference_side(work: Path, seeds: list[int]) -> tuple[dict[str, list], dict]:
    """Per-seed lists and validation curves of the reference runs under ``work``."""
    ref: dict[str, list] = {k: [] for k in SIDE_FIELDS}
    curves = {}
    for seed in seeds:
        out = work / f"reference-seed{seed}"
        result = json.loads((out / "test.json").read_text())["mean_results"]
        curve = json.loads((out / "curve.json").read_text())
        timing = json.loads((out / "timing.json").read_text())
        decoded = [e["valid_seconds"] for e in curve if "valid_seconds" in e]
        ref["recall@10"].append(result["hit@10"])
        ref["ndcg@10"].append(result["ndcg@10"])
        ref["seconds_per_epoch"].append(statistics.mean(e["train_seconds"] for e in curve))
        ref["valid_seconds_per_epoch"].append(statistics.mean(decoded))
        ref["test_seconds"].append(timing["test_wall_seconds"])
        # their load_best_model_at_end keeps the epoch of the lowest validation loss
        ref["best_epoch"].append(min(curve, key=lambda e: e.get("eval_loss", math.inf))["epoch"])
        curves[seed] = curve
    return ref, curves


def find_our_record(folder: Path, seed: int, expected: dict[str, Any], label: str) -> dict | None:
    """The finished record of ``seed`` under ``label`` trained with every ``expected`` config
    value (a record of another size, schedule or ID file is not this comparison's)."""
    from benchmark.records import read_record

    for path in sorted(folder.glob("*.json")):
        record = read_record(path)
        if not record or record.get("seed") != seed or record.get("status") != "ok":
            continue
        if record.get("spec", {}).get("label") != label:
            continue
        config = record.get("model", {}).get("config", {})
        if all(_same_value(config.get(key), value) for key, value in expected.items()):
            return record
    return None


def _same_value(recorded: Any, given: Any) -> bool:
    """A recorded config value against a ``--set`` value (``"512,256"`` for a tuple, a number
    given as text)."""
    if isinstance(recorded, (list, tuple)):
        recorded = ",".join(str(v) for v in recorded)
    try:
        return float(recorded) == float(given)
    except (TypeError, ValueError):
        return str(recorded) == str(given)


def train_seconds_per_epoch(curve: list[dict]) -> float:
    """Mean seconds of an epoch's training steps: a curve entry's ``seconds`` is the training
    clock when the epoch ended (before its validation), so the step between two entries, less
    the earlier one's validation, is one epoch's training (setup before epoch 0 left out)."""
    steps = [b["seconds"] - a["seconds"] - a["valid_seconds"] for a, b in zip(curve, curve[1:])]
    return statistics.mean(steps) if steps else curve[0]["seconds"]


def verdict_for(ours: list[float], ref: list[float], ref_spread: float = 0.0) -> dict[str, Any]:
    """Pass when the means differ by at most the larger seed spread (max - min) or 10%;
    ``ref_spread``: the reference's spread over all its seeds, for a side compared on fewer
    (one seed has no spread of its own)."""
    a, b = statistics.mean(ours), statistics.mean(ref)
    spread = max(max(ours) - min(ours), max(ref) - min(ref), ref_spread)
    difference = a - b
    relative = difference / b if b else math.inf
    return {
        "ours_mean": a,
        "reference_mean": b,
        "difference": difference,
        "relative": relative,
        "larger_spread": spread,
        "passed": abs(difference) <= spread or abs(relative) <= 0.10,
    }


def reference_environment(venv: Path) -> dict[str, Any]:
    python = venv / "bin" / "python"
    probe = (
        "import json, platform, torch, transformers, accelerate; print(json.dumps({"
        "'python': platform.python_version(), 'torch': torch.__version__, "
        "'transformers': transformers.__version__, 'accelerate': accelerate.__version__}))"
    )
    try:
        out = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        env = json.loads(out)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
        env = {}
    env["code"] = "HonghuiBao2000/LETTER LETTER-TIGER (8d0154e), patched for the CPU"
    env["patches"] = [f"{name}: {old!r} -> {new!r}" for name, old, new in PATCHES]
    return env


if __name__ == "__main__":
    sys.exit(main())
