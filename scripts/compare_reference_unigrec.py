"""Our UniGRec recommender stages against the authors' (Jialei-03/UniGRec), from one tokenizer.

    python -m scripts.compare_reference_unigrec --reference /path/to/UniGRec --dataset office \\
        --seeds 0,1 --data-dir ../shared/data

``--reference`` is a checkout of Jialei-03/UniGRec (read, copied into the work folder and
patched there, never committed). The comparison of ``scripts/compare_reference.py`` (TIGER vs
LETTER-TIGER), for UniGRec's stage 2 (joint training of tokenizer and recommender) and stage 3
(fine-tuning with the tokenizer frozen); each step is skipped when its output exists:

1. **Environment.** A virtual environment with the authors' pins (transformers 4.56.2, numpy,
   pandas, pyarrow, einops, scikit-learn; ``--torch`` names the torch). ``swanlab`` (their
   experiment tracker, imported unconditionally, used only with ``--use_swanlab``) is replaced
   by a stub that fails if called; HF ``datasets`` must not be installed (it would shadow their
   ``rqvae/datasets.py``).
2. **One stage-1 tokenizer.** Our UniGRec stage 1 (soft RQ-VAE, tau annealed 0.01 -> 0.001,
   codeword uniformity) trained once under ``tokenizer_seed`` and converted into their
   checkpoint format (their MLP puts Dropout, Linear, ReLU per layer; their soft quantiser has
   the same ``softmax(-||r - e||^2 / tau)``). ``scripts/reference/unigrec_inputs.py`` loads it
   with *their* RQ-VAE class and checks every item gets our codes (``check.json``). Their code
   hard-codes 3 levels of 256 codewords, so both sides use 3 x 256 here (our quick profile
   uses 64).
3. **Same data.** Their parquet splits from our leave-one-out split (each user's items oldest
   first; their loader slides the same prefix -> next window over the training items and keeps
   the last 20), our text embeddings (row i = item i + 1) and, per seed, our SASRec teacher
   (the one our run of that seed distils from).
4. **Same settings.** T5 size, AdamW (T5 lr, tokenizer lr, weight decay), batch, warmup then
   constant, joint epochs, distillation weights and start epoch, fine-tuning epochs and lr, no
   early stop (patience = epochs; both keep the best validation NDCG@10 epoch of each stage),
   history cap 20, beam 20. The batch, 327, divides the 4,905 office users: their metrics are
   a mean of per-batch means, equal to the per-user mean only when every batch is full.
5. **Both sides, every seed**, then ``results/reference/<dataset>-unigrec-quick.json`` + ``.md``
   (the fields of the TIGER comparison).

Their trainer cannot resume: a killed reference run starts again (ours continues from its last
epoch). ``--side ours|reference|report`` runs one part.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from scripts.compare_reference import (
    REPO,
    SIDE_FIELDS,
    build_environment,
    check_same_settings,
    copy_and_patch,
    markdown_table,
    our_side,
    ours_results_dir,
    user_sequences,
    verdict_for,
)

INPUTS_DRIVER = REPO / "scripts" / "reference" / "unigrec_inputs.py"
REFERENCE_PINS = [
    "transformers==4.56.2",
    "numpy==2.2.6",
    "pandas==2.3.2",
    "pyarrow==21.0.0",
    "scikit-learn==1.7.2",
    "scipy==1.15.3",
    "einops==0.8.0",
    "tqdm",
    "sentencepiece",
    "safetensors",
    "accelerate==1.12.0",
]
LABEL = "unigrec-vs-reference"
METHOD = "unigrec"

# (file, old, new): each must match exactly once in their model/train.py at bc499ce. They only
# add timing prints (their joint stage prints no epoch time; numbers unchanged, checked).
RECALL_LINE = (
    "print(f\"    Recall@{k}: {valid_recalls[f'Recall@{k}']:.4f}  "
    "NDCG@{k}: {valid_ndcgs[f'NDCG@{k}']:.4f}\")"
)
PATCHES: list[tuple[str, str, str]] = [
    (
        "model/train.py",
        '            print(f"\\n[Epoch {epoch+1}] Joint training")\n',
        '            print(f"\\n[Epoch {epoch+1}] Joint training")\n'
        "            joint_epoch_start_time = time.time()\n",
    ),
    (
        "model/train.py",
        '            print(f"  Total Loss: {avg_total_loss:.4f}")\n',
        '            print(f"  Total Loss: {avg_total_loss:.4f} (train time: '
        '{time.time() - joint_epoch_start_time:.2f}s)")\n',
    ),
    (
        "model/train.py",
        "                " + RECALL_LINE + "\n    \n            # ===== ",
        "                " + RECALL_LINE + "\n"
        '            print(f"  Epoch wall time: {time.time() - joint_epoch_start_time:.2f}s")\n'
        "    \n            # ===== ",
    ),
    (
        "model/train.py",
        "                    " + RECALL_LINE + "\n                \n"
        "                # SwanLab logging: validation metrics",
        "                    " + RECALL_LINE + "\n"
        '                print(f"  Epoch wall time: {time.time() - training_start_time:.2f}s")\n'
        "                \n                # SwanLab logging: validation metrics",
    ),
]
SWANLAB_STUB = '''"""Stand-in for swanlab (not installed): the run passes no --use_swanlab."""


def _unused(*args, **kwargs):
    raise RuntimeError("swanlab is stubbed out for the offline reference run")


init = log = finish = _unused


class config:
    update = staticmethod(_unused)
'''


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work or default_work(args)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    venv = Path(args.venv or work.parent / "unigrec-venv")
    if args.side != "report":
        settings = write_settings(args, work)
    if args.side in ("both", "ours"):
        for seed in seeds:
            run_ours(args, settings, seed)
    if args.side in ("both", "reference"):
        python = build_environment(venv, [args.torch, *REFERENCE_PINS])
        code = patched_copy(Path(args.reference), work / "UniGRec")
        data = write_inputs(args, work, python, code, seeds)
        for seed in seeds:
            run_reference(args, work, code, python, data, settings, seed)
    if args.side in ("both", "report"):
        path = write_report(args, work, venv, seeds)
        print(f"compare_reference_unigrec: wrote {path}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", help="checkout of Jialei-03/UniGRec (not for the report)")
    p.add_argument("--dataset", default="office")
    p.add_argument("--data-dir", default=os.environ.get("GENREC_DATA_DIR"))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--tokenizer-seed", type=int, default=0)
    p.add_argument("--joint-epochs", type=int, default=12)
    p.add_argument("--finetune-epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=327)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--side", choices=["both", "ours", "reference", "report"], default="both")
    p.add_argument("--work", help="work folder (default ~/.cache/genrec-bench/reference/...)")
    p.add_argument("--venv", help="reference environment (default: beside the work folder)")
    p.add_argument("--torch", default="torch", help="pip requirement or wheel for its torch")
    args = p.parse_args(argv)
    if (
        args.side in ("both", "reference")
        and not (Path(args.reference or ".") / "model" / "train.py").is_file()
    ):
        p.error(
            f"--reference {args.reference}: no model/train.py there; pass a checkout of "
            "https://github.com/Jialei-03/UniGRec"
        )
    return args


def default_work(args: argparse.Namespace) -> Path:
    from benchmark.data import cache_root

    return cache_root() / "reference" / f"{args.dataset}-unigrec-quick"


# ------------------------------------------------------------------ shared settings
def shared_settings(args: argparse.Namespace, train_pairs: int) -> dict[str, Any]:
    """What both sides train with: our UniGRec ``quick`` profile at 3 x 256 codewords, the
    authors' loss weights, warmup 10% of the joint stage's steps (theirs ``int(ratio x steps)``)
    then constant, fine-tuning warmed up over the same number of steps (ours re-warms each
    stage; theirs gets the ratio that gives that many)."""
    steps = -(-train_pairs // args.batch_size)
    warmup = int(0.1 * args.joint_epochs * steps)
    return {
        "size": "quick",
        "num_layers": 2,
        "d_model": 64,
        "d_ff": 256,
        "num_heads": 4,
        "d_kv": 16,
        "dropout": 0.1,
        "levels": 3,
        "codebook_size": 256,
        "rq_hidden": [512, 256, 128],
        "rq_latent": 32,
        "tau_max": 0.01,
        "tau_min": 0.001,
        "uniformity_weight": 1e-4,
        "tokenizer_seed": args.tokenizer_seed,
        "optimizer": "AdamW",
        "lr": 2e-3,
        "tokenizer_lr": 1e-5,
        "weight_decay": 0.01,
        "batch_size": args.batch_size,
        "schedule": "warmup then constant",
        "warmup_steps": warmup,
        "joint_epochs": args.joint_epochs,
        "epochs": args.joint_epochs + args.finetune_epochs,
        "recon_weight": 0.5,
        "tokenizer_distill_weight": 0.01,
        "rec_distill_weight": 0.1,
        "distill_start_epoch": 2,
        "finetune_epochs": args.finetune_epochs,
        "finetune_lr": 4e-4,
        "finetune_warmup_ratio": (warmup + 0.5) / (args.finetune_epochs * steps),
        "max_history": 20,
        "beam": 20,
        "train_pairs": train_pairs,
    }


def write_settings(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    path = work / "settings.json"
    from benchmark.data import load_sequence_data

    data = load_sequence_data(args.dataset, args.data_dir)
    settings = shared_settings(args, int(len(data.train_targets)))
    check_same_settings(work, settings)  # flags changed since this folder's runs: refuse
    path.write_text(json.dumps(settings, indent=1))
    return settings


def our_overrides(s: dict[str, Any]) -> dict[str, Any]:
    """``--set`` values of our side."""
    return {
        **{k: s[k] for k in ("num_layers", "d_model", "d_ff", "num_heads", "d_kv", "dropout")},
        **{k: s[k] for k in ("codebook_size", "tau_max", "tau_min", "uniformity_weight")},
        "rq_hidden": ",".join(str(h) for h in s["rq_hidden"]),
        "rq_latent": s["rq_latent"],
        "tokenizer_seed": s["tokenizer_seed"],
        **{k: s[k] for k in ("lr", "tokenizer_lr", "weight_decay", "batch_size")},
        "lr_schedule": "constant",
        "warmup_steps": s["warmup_steps"],
        "epochs": s["joint_epochs"],
        "patience": s["joint_epochs"],
        **{k: s[k] for k in ("recon_weight", "tokenizer_distill_weight", "rec_distill_weight")},
        "distill_start_epoch": s["distill_start_epoch"],
        "finetune_epochs": s["finetune_epochs"],
        "finetune_patience": s["finetune_epochs"],
        "finetune_lr": s["finetune_lr"],
        "beam_size": s["beam"],
        "train_pairs_per_user": 0,
    }


# ------------------------------------------------------------------ our side
def run_ours(args, s: dict[str, Any], seed: int) -> None:
    cmd = [sys.executable, "-m", "benchmark", "run", "--models", METHOD]
    cmd += ["--dataset", args.dataset, "--profile", "quick", "--seeds", str(seed)]
    cmd += ["--threads", str(args.threads), "--results-dir", str(ours_results_dir())]
    cmd += ["--label", LABEL, "--max-history", str(s["max_history"]), "--quiet"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    for key, value in our_overrides(s).items():
        cmd += ["--set", f"{key}={value}"]
    subprocess.run(cmd, check=True, cwd=REPO)


# ------------------------------------------------------------------ reference side set-up
def patched_copy(reference: Path, target: Path) -> Path:
    """Their checkout (no git folder, no datasets) with the timing prints and a swanlab stub."""
    stub = target / "stubs" / "swanlab" / "__init__.py"
    if not stub.exists():
        if target.exists():
            shutil.rmtree(target)  # copy_and_patch starts again
        copy_and_patch(reference, target, PATCHES, "UniGRec bc499ce", (".git", "dataset"))
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text(SWANLAB_STUB)
    return target


def reference_env(args, code: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(code / "stubs"),
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "CUDA_VISIBLE_DEVICES": "",
    }


# ------------------------------------------------------------------ shared inputs
def export_ours(args, work: Path, seeds: list[int]) -> Path:
    """Our split, embeddings, teachers, stage-1 RQ-VAE and its codes, as plain arrays."""
    from benchmark.cache import DiskCache
    from benchmark.data import Protocol, cache_root, load_sequence_data
    from benchmark.runner import HarnessContext, build_config, resolve_model

    export = work / "export"
    if (export / "done").exists():
        return export
    export.mkdir(parents=True, exist_ok=True)
    s = json.loads((work / "settings.json").read_text())
    data = load_sequence_data(args.dataset, args.data_dir)
    cache = DiskCache(cache_root() / "artifacts")
    import torch

    overrides = {key: str(value) for key, value in our_overrides(s).items()}

    def context(seed: int):
        cls = resolve_model(METHOD)
        model = cls(build_config(cls, "quick", overrides))
        return model, HarnessContext(
            model, data, Protocol(), seed, cache, torch.device("cpu"), quiet=True
        )

    sequences = {str(u): seq for u, seq in user_sequences(data).items()}
    (export / "sequences.json").write_text(json.dumps(sequences))
    model, ctx = context(s["tokenizer_seed"])
    embeddings = ctx.item_embeddings(model.config.encoder)[1:].astype(np.float32)
    np.save(export / "embeddings.npy", embeddings)
    rqvae, inputs = model.pretrained_rqvae(data, ctx)
    rqvae.quantizer.tau = s["tau_min"]
    with torch.no_grad():
        codes = rqvae.quantizer(rqvae.encode(inputs)).codes.numpy()
    np.save(export / "codes.npy", codes)
    np.savez(export / "rqvae.npz", **their_rqvae_state(rqvae.state_dict()))
    (export / "rqvae.json").write_text(
        json.dumps(
            {
                "levels": s["levels"],
                "codebook_size": s["codebook_size"],
                "hidden": s["rq_hidden"],
                "latent": s["rq_latent"],
                "tau_max": s["tau_max"],
                "tau_min": s["tau_min"],
                "uniformity_weight": s["uniformity_weight"],
            }
        )
    )
    for seed in seeds:
        _, ctx = context(seed)
        teacher = ctx.teacher_embeddings()[1:].astype(np.float32)
        np.save(export / f"teacher-seed{seed}.npy", teacher)
    (export / "done").write_text("ok\n")
    return export


def their_rqvae_state(state: dict[str, Any]) -> dict[str, np.ndarray]:
    """Our RQ-VAE weights under their names: our MLPs are Linear/ReLU pairs (linear ``i`` at
    index ``2i``), theirs Dropout/Linear/ReLU triples (``3i + 1``); our ``[L, K, d]`` codebook
    tensor becomes one embedding table per level."""
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        array = value.detach().cpu().numpy()
        part, *rest = key.split(".")
        if part in ("encoder", "decoder"):
            index, name = int(rest[0]), rest[1]
            out[f"{part}.mlp_layers.{3 * (index // 2) + 1}.{name}"] = array
        elif key == "quantizer.codebooks":
            for level, book in enumerate(array):
                out[f"rq.vq_layers.{level}.embedding.weight"] = book
        else:
            raise SystemExit(f"error: no place for {key!r} in their RQ-VAE checkpoint")
    return out


def write_inputs(args, work: Path, python: Path, code: Path, seeds: list[int]) -> Path:
    data = work / "data"
    if (data / "check.json").exists():
        return data
    export = export_ours(args, work, seeds)
    subprocess.run(
        [str(python), str(INPUTS_DRIVER), str(export), str(data)],
        check=True,
        cwd=code,
        env=reference_env(args, code),
    )
    check = json.loads((data / "check.json").read_text())
    if check["same_codes"] != check["items"]:
        raise SystemExit(
            f"error: their RQ-VAE gives our stage-1 codes for {check['same_codes']} of "
            f"{check['items']} items only (per level {check['same_codes_per_level']}); the "
            "checkpoint conversion is wrong"
        )
    return data


# ------------------------------------------------------------------ reference side
def reference_command(python: Path, data: Path, out: Path, s: dict[str, Any], seed: int) -> list:
    joint, finetune = s["joint_epochs"], s["finetune_epochs"]
    flags = {
        "--train_data": data / "train.parquet",
        "--valid_data": data / "valid.parquet",
        "--test_data": data / "test.parquet",
        "--item_emb_path": data / "item_emb.parquet",
        "--rqvae_model_path": data / "rqvae.pth",
        "--sasrec_emb_path": data / f"teacher-seed{seed}.parquet",
        "--save_dir": out / "ckpt",
        "--device": "cpu",
        "--train_num_workers": 0,
        "--eval_num_workers": 0,
        "--batch_size": s["batch_size"],
        "--num_epochs": joint,
        "--t5_lr": s["lr"],
        "--rqvae_lr": s["tokenizer_lr"],
        "--weight_decay": s["weight_decay"],
        "--warmup_ratio": 0.1,
        "--scheduler_type": "constant_with_warmup",
        "--alpha": s["recon_weight"],
        "--beta": 1.0,
        "--gamma": s["tokenizer_distill_weight"],
        "--delta": s["rec_distill_weight"],
        "--warm_epoch": s["distill_start_epoch"],
        "--diversity_weight": 0.0,
        "--tau": s["tau_min"],
        "--max_len": s["max_history"],
        "--beam_size": s["beam"],
        "--num_layers": s["num_layers"],
        "--num_decoder_layers": s["num_layers"],
        "--d_model": s["d_model"],
        "--d_ff": s["d_ff"],
        "--num_heads": s["num_heads"],
        "--d_kv": s["d_kv"],
        "--dropout_rate": s["dropout"],
        "--patience": joint,
        "--early_stop_metric": "ndcg@10",
        "--seed": seed,
        "--finetune_lr": s["finetune_lr"],
        "--finetune_epochs": finetune,
        "--finetune_patience": finetune,
        "--finetune_early_stop_metric": "ndcg@10",
        "--finetune_warmup_ratio": s["finetune_warmup_ratio"],
        "--finetune_scheduler_type": "constant_with_warmup",
    }
    cmd = [str(python), "model/train.py", "--use_sasrec_teacher", "--enable_finetune"]
    for flag, value in flags.items():
        cmd += [flag, str(value)]
    return cmd + ["--topk_list", "5", "10", "20"]


def run_reference(args, work, code, python, data, s: dict[str, Any], seed: int) -> None:
    out = work / f"reference-seed{seed}"
    if (out / "result.json").exists():
        return
    log_file = out / "train.log"
    if log_file.exists() and "Finetune stage completed!" in log_file.read_text(encoding="utf-8"):
        write_reference_result(out, s)  # trained already: only the parse is missing
        return
    if out.exists():  # their trainer cannot resume: a killed run starts again
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = time.monotonic()
    with open(out / "train.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            reference_command(python, data, out, s, seed),
            cwd=code,
            env=reference_env(args, code),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:  # each line stamped with seconds since the start
            log.write(f"{time.monotonic() - started:.2f}\t{line}")
            log.flush()
        if proc.wait() != 0:
            raise SystemExit(f"error: reference seed {seed} failed; see {out / 'train.log'}")
    write_reference_result(out, s)


def write_reference_result(out: Path, s: dict[str, Any]) -> None:
    result = parse_reference_log((out / "train.log").read_text(encoding="utf-8"), s)
    (out / "result.json").write_text(json.dumps(result, indent=1))


METRIC = re.compile(r"^\s+Recall@(\d+): ([\d.]+)  NDCG@\1: ([\d.]+)$")
TRAIN_TIME = re.compile(r"^  Total Loss: (\S+) \(train time: ([\d.]+)s\)$")
WALL_TIME = re.compile(r"^  Epoch wall time: ([\d.]+)s$")


def parse_reference_log(text: str, s: dict[str, Any]) -> dict[str, Any]:
    """Validation curve (epochs numbered on across both stages, as ours), test metrics of the
    best fine-tuned model (their final, paper-style number) and of the best joint model, and
    times, from their stdout stamped with seconds since the start."""
    curve: list[dict[str, Any]] = []
    block, test, joint_test, stamps = None, {}, {}, {}
    previous = 0.0  # when the last line that is not a progress bar was printed
    for raw in text.splitlines():
        stamp, _, line = raw.partition("\t")
        seconds = float(stamp)
        if not line.strip() or line.startswith("Evaluating"):  # tqdm's bars (stderr)
            continue
        if m := re.match(r"^\[Epoch (\d+)\] Joint training$", line):
            curve.append({"epoch": int(m.group(1)) - 1, "stage": "joint", "start": seconds})
            block = "valid"
        elif m := re.match(r"^\[Finetune Epoch (\d+)/\d+\]$", line):
            epoch = s["joint_epochs"] + int(m.group(1)) - 1
            curve.append({"epoch": epoch, "stage": "finetune", "start": seconds})
            block = "valid"
        elif line.startswith("Best model performance on test set"):
            block, stamps["joint_test_start"] = "joint_test", previous
        elif line.startswith("Best finetune model performance on test set"):
            block, stamps["test_start"] = "test", previous
            stamps["test_end"] = seconds
        elif m := TRAIN_TIME.match(line):
            curve[-1].update(loss=float(m.group(1)), train_seconds=float(m.group(2)))
        elif m := WALL_TIME.match(line):
            curve[-1]["valid_seconds"] = float(m.group(1)) - curve[-1]["train_seconds"]
        elif m := METRIC.match(line):
            k, recall, ndcg = m.group(1), float(m.group(2)), float(m.group(3))
            target = {"valid": curve[-1] if curve else {}, "test": test, "joint_test": joint_test}
            target.get(block, {}).update({f"recall@{k}": recall, f"ndcg@{k}": ndcg})
        previous = seconds
    if "recall@10" not in test:
        raise SystemExit("error: no fine-tuned test result in the reference log")
    finetune = [e for e in curve if e["stage"] == "finetune"]
    best = max(finetune, key=lambda e: (e["ndcg@10"], -e["epoch"]))  # first best (strict >)
    return {
        "test": test,
        "joint_test": joint_test,
        "curve": curve,
        "best_epoch": best["epoch"],
        # the test decode ends when its header is printed; it starts after the line before
        "test_seconds": round(stamps["test_end"] - stamps["test_start"], 2),
    }


# ------------------------------------------------------------------ report
def write_report(args: argparse.Namespace, work: Path, venv: Path, seeds: list[int]) -> Path:
    import torch

    from benchmark.atomic import write_json_atomic, write_text_atomic
    from benchmark.records import environment

    settings = json.loads((work / "settings.json").read_text())
    check = json.loads((work / "data" / "check.json").read_text())
    ours, ours_curves, ours_env = our_side(
        args.dataset, seeds, our_overrides(settings), LABEL, method=METHOD
    )
    ref, ref_curves = reference_side(work, seeds)
    verdict = {m: verdict_for(ours[m], ref[m]) for m in ("recall@10", "ndcg@10")}
    report = {
        "dataset": args.dataset,
        "method": METHOD,
        "size": "quick",
        "epochs": settings["epochs"],
        "seeds": seeds,
        "config": settings,
        "tokenizer_check": check,
        "ours": ours,
        "reference": ref,
        "verdict": verdict,
        "passed": all(v["passed"] for v in verdict.values()),
        "curves": {"ours": ours_curves, "reference": ref_curves},
        "environment": {
            "ours": ours_env,
            "reference": reference_environment(venv),
            "report_written_by": environment(torch.device("cpu")),
        },
        "selection": {
            "ours": "best validation NDCG@10 epoch of each stage (beam 20, trie-constrained)",
            "reference": "best validation NDCG@10 epoch of each stage (beam 20, per-level "
            "token ranges only; beams that are no item count as misses)",
        },
    }
    path = REPO / "results" / "reference" / f"{args.dataset}-unigrec-quick.json"
    write_json_atomic(path, report)
    write_text_atomic(path.with_suffix(".md"), markdown_table(report))
    return path


def reference_side(work: Path, seeds: list[int]) -> tuple[dict[str, list], dict]:
    ref: dict[str, list] = {k: [] for k in (*SIDE_FIELDS, "joint_test")}
    curves = {}
    for seed in seeds:
        result = json.loads((work / f"reference-seed{seed}" / "result.json").read_text())
        curve = result["curve"]
        ref["recall@10"].append(result["test"]["recall@10"])
        ref["ndcg@10"].append(result["test"]["ndcg@10"])
        ref["seconds_per_epoch"].append(statistics.mean(e["train_seconds"] for e in curve))
        ref["valid_seconds_per_epoch"].append(statistics.mean(e["valid_seconds"] for e in curve))
        ref["test_seconds"].append(result["test_seconds"])
        ref["best_epoch"].append(result["best_epoch"])
        ref["joint_test"].append(result["joint_test"])
        curves[seed] = curve
    return ref, curves


def reference_environment(venv: Path) -> dict[str, Any]:
    probe = (
        "import json, platform, torch, transformers, numpy, pandas; print(json.dumps({"
        "'python': platform.python_version(), 'torch': torch.__version__, "
        "'transformers': transformers.__version__, 'numpy': numpy.__version__, "
        "'pandas': pandas.__version__}))"
    )
    try:
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        env = json.loads(out)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
        env = {}
    env["code"] = "Jialei-03/UniGRec (bc499ce) model/train.py --enable_finetune, timing prints"
    env["patches"] = [f"{name}: {old!r} -> {new!r}" for name, old, new in PATCHES]
    return env


if __name__ == "__main__":
    sys.exit(main())
