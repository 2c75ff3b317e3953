"""Write the UniGRec authors' input files from arrays exported by ``compare_reference_unigrec``
and check that their RQ-VAE, loaded from the converted checkpoint, gives our stage-1 IDs.

Runs in the *reference* environment (pandas + pyarrow + their torch), from their checkout's
root (``rqvae/`` importable), with a ``swanlab`` stub on PYTHONPATH:

    python unigrec_inputs.py EXPORT_DIR DATA_DIR

EXPORT_DIR (written by our side): ``sequences.json`` (user -> items 1..N, oldest first),
``embeddings.npy`` (row i = item i+1), ``teacher-seed<S>.npy``, ``rqvae.npz`` (our stage-1
weights under their parameter names), ``rqvae.json`` (architecture, temperature), ``codes.npy``
(our hard stage-1 codes). DATA_DIR gets {train,valid,test}.parquet, item_emb.parquet,
teacher-seed<S>.parquet, rqvae.pth and check.json.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def splits(sequences: dict[str, list[int]]) -> dict[str, pd.DataFrame]:
    """Leave-one-out rows as their dataset/process.ipynb writes them: the history of the train
    row is every item before the third-last (their loader slides a window over it), valid and
    test hold one more item each."""
    frames = {}
    for name, cut in (("train", 2), ("valid", 1), ("test", 0)):
        rows = []
        for user, seq in sequences.items():
            seq = seq[: len(seq) - cut] if cut else seq
            rows.append({"user": int(user), "history": seq[:-1], "target": seq[-1]})
        frames[name] = pd.DataFrame(rows)
    return frames


def embedding_frame(matrix: np.ndarray, column: str) -> pd.DataFrame:
    ids = np.arange(1, len(matrix) + 1, dtype=np.int64)
    return pd.DataFrame({"ItemID": ids, column: [row.tolist() for row in matrix]})


def rqvae_checkpoint(export: Path, data: Path, embeddings: np.ndarray) -> dict:
    sys.path.insert(0, "rqvae")
    from models.rqvae import RQVAE  # their class

    spec = json.loads((export / "rqvae.json").read_text())
    levels = spec["levels"]
    args = argparse.Namespace(
        num_emb_list=[spec["codebook_size"]] * levels,
        e_dim=spec["latent"],
        layers=list(spec["hidden"]),
        dropout_prob=0.0,  # ours has no dropout in the RQ-VAE
        bn=False,
        loss_type="mse",
        quant_loss_weight=1.0,
        beta=0.25,
        sk_epsilons=[0.0] * levels,
        sk_iters=50,
        vq_type="soft",
        distance="l2",
        temperature=spec["tau_max"],
        temperature_final=spec["tau_min"],
        temperature_schedule="linear",
        diversity_scale=spec["uniformity_weight"],
        norm_type="none",
        kmeans_init=False,
        kmeans_iters=100,
    )
    model = RQVAE(
        in_dim=embeddings.shape[1],
        num_emb_list=args.num_emb_list,
        e_dim=args.e_dim,
        layers=args.layers,
        dropout_prob=args.dropout_prob,
        bn=args.bn,
        loss_type=args.loss_type,
        quant_loss_weight=args.quant_loss_weight,
        beta=args.beta,
        kmeans_init=False,
        kmeans_iters=args.kmeans_iters,
        sk_epsilons=args.sk_epsilons,
        sk_iters=args.sk_iters,
        vq_type=args.vq_type,
        distance=args.distance,
        temperature=spec["tau_min"],
        diversity_scale=args.diversity_scale,
    )
    with np.load(export / "rqvae.npz", allow_pickle=False) as arrays:
        state = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
    model.load_state_dict(state, strict=True)
    model.eval()
    torch.save(
        {"args": args, "state_dict": model.state_dict(), "current_temperature": spec["tau_min"]},
        data / "rqvae.pth",
    )
    theirs = model.get_indices(torch.from_numpy(embeddings).float()).numpy()
    ours = np.load(export / "codes.npy", allow_pickle=False)
    return {
        "items": int(len(ours)),
        "same_codes": int((theirs == ours).all(1).sum()),
        "same_codes_per_level": (theirs == ours).mean(0).round(6).tolist(),
    }


def main() -> None:
    export, data = Path(sys.argv[1]), Path(sys.argv[2])
    data.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    sequences = json.loads((export / "sequences.json").read_text())
    for name, frame in splits(sequences).items():
        frame.to_parquet(data / f"{name}.parquet", index=False)
    embeddings = np.load(export / "embeddings.npy", allow_pickle=False)
    embedding_frame(embeddings, "embedding").to_parquet(data / "item_emb.parquet", index=False)
    for path in sorted(export.glob("teacher-seed*.npy")):
        teacher = np.load(path, allow_pickle=False)
        embedding_frame(teacher, "cf_embedding").to_parquet(data / f"{path.stem}.parquet")
    check = rqvae_checkpoint(export, data, embeddings)
    (data / "check.json").write_text(json.dumps(check, indent=1))
    print(json.dumps(check))


if __name__ == "__main__":
    main()
