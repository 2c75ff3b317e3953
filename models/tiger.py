"""TIGER: Rajput et al., "Recommender Systems with Generative Retrieval", NeurIPS 2023.

What follows the paper, and where:

* Sec. 3.1 semantic IDs: item text -> sentence embedding -> RQ-VAE (MLP encoder 512-256-128 ->
  latent 32, mirrored decoder; 3 levels x 256 codes; k-means initialised codebooks; loss =
  reconstruction + codebook + 0.25 x commitment, straight-through hard codes), trained once and
  frozen (``models.components.quantizer``). Items sharing all codes get a 4th collision digit
  0, 1, 2, ... (Sec. 3.1, "Handling collisions").
* Sec. 3.2 generative retrieval: a T5 encoder-decoder trained from scratch on the history's SID
  tokens to emit the next item's SID (CE), decoded by beam search; we constrain the beam to real
  items with a prefix trie (the paper reports 0.1-1.6% invalid IDs without it).
* Sec. 4.1 sizes: 4+4 layers, d_model 128, 6 heads of 64, d_ff 1024, dropout 0.1, histories of
  at most 20 items (the ``paper`` profile).

Deliberate deviations (all config fields):

* Text encoder: all-MiniLM-L6-v2 (384-d, offline) by default instead of Sentence-T5 (768-d).
* Optimiser: AdamW with linear warmup, then ``lr_schedule`` (default constant; inverse-sqrt is
  the paper's decay), and early stopping on validation NDCG@10 instead of Adagrad for a fixed
  200k steps: a schedule over a planned length would be cut anywhere by early stopping.
* No user-ID token (the paper hashes users into 2,000 tokens; its ports mostly drop it).
* ``quick`` shrinks the T5 (2+2 layers, d_model 64) and codebooks (3 x 64) so a converged CPU
  run takes minutes; ``paper`` holds the published sizes. Both train on every (prefix -> next)
  pair, as the baselines do, until validation NDCG@10 stops improving.
"""

from __future__ import annotations

from typing import Any, ClassVar

from models.generative import GenerativeConfig, GenerativeRecommender

CPU_QUICK: dict[str, Any] = {
    "codebook_size": 64,
    "rq_epochs": 150,
    "rq_batch_size": 256,
    "num_layers": 2,
    "d_model": 64,
    "d_ff": 256,
    "num_heads": 4,
    "d_kv": 16,
    "epochs": 60,  # a cap: early stopping (patience 5) ends every quick run measured before it
    "lr": 2e-3,
    "warmup_steps": 100,
    "patience": 5,
}
SMOKE: dict[str, Any] = {
    "codebook_size": 8,
    "rq_hidden": (32,),
    "rq_latent": 8,
    "rq_epochs": 5,
    "rq_batch_size": 256,
    "num_layers": 1,
    "d_model": 16,
    "d_ff": 32,
    "num_heads": 2,
    "d_kv": 8,
    "epochs": 1,
    "warmup_steps": 10,
    "beam_size": 10,
}
PAPER: dict[str, Any] = {
    "codebook_size": 256,
    "rq_epochs": 3000,
    "epochs": 200,
    "lr": 5e-4,
    "batch_size": 256,
    "patience": 20,
}


class TIGER(GenerativeRecommender):
    """TIGER (NeurIPS 2023): frozen RQ-VAE semantic IDs + T5 generative retrieval."""

    name = "tiger"
    Config = GenerativeConfig
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": SMOKE,
        "quick": CPU_QUICK,
        "paper": PAPER,
    }
