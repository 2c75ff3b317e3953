"""LETTER: Wang et al., "Learnable Item Tokenization for Generative Recommendation", CIKM 2024.

TIGER (``models.tiger``) with two regularisers added to the RQ-VAE loss, the tokenizer trained
once and frozen as in TIGER (paper objective ``L_LETTER = L_Sem + alpha L_CF + beta L_Div``; the
code's form, METHODS.md Sec. 5):

    L = L_recon + L_vq + alpha * L_CF + beta * mean_l L_div

* Semantic regularisation: TIGER's reconstruction and codebook/commitment losses.
* Collaborative regularisation ``L_CF``: in-batch softmax over raw dot products between
  each item's quantised latent ``z_q`` (straight-through) and its SASRec item embedding; the other
  items of the batch are the negatives (``collaborative_loss``). The teacher is the harness's
  cached SASRec (``ctx.teacher_embeddings()``), ``alpha = cf_weight``.
* Diversity regularisation ``L_div``: at the start of every tokenizer epoch each
  level's codewords are split into ``diversity_clusters`` balanced clusters; an item on code
  ``c`` is pulled toward a random other code of ``c``'s cluster (``diversity_loss``; query = the
  quantised vector ``E_l[c]``, as LETTER's code does), weight ``beta = diversity_weight``,
  averaged over levels.
* Recommender: TIGER's T5 on LETTER's IDs with the ranking-guided loss, CE on
  ``logits / temperature`` (``run_train.sh``: T = 1.0, i.e. plain CE).

``paper``: LETTER's code for Beauty (``tokenize.sh``): 4 levels x 256 x 32-d, encoder
2048-1024-512-256-128-64, 20k tokenizer epochs, AdamW 1e-3, batch 1024, alpha 0.1, beta 1e-4,
10 clusters; recommender AdamW 5e-4, wd 0.01, batch 1024, cosine with 1% warmup, 200 epochs,
patience 20, beam 20. Instruments uses ``cf_weight=0.01``.

Deviations:

* The teacher's dimension (64, the harness's SASRec) differs from the latent (32): a learned
  ``Linear(latent, teacher_dim)`` maps ``z_q`` before the dot products, trained with the
  tokenizer. LETTER uses a 32-d SASRec table directly.
* Codeword clusters are balanced by Sinkhorn (``balanced_kmeans``), not LETTER's size-bounded
  (10-60) constrained k-means.
* TIGER's pipeline around it: k-means initialisation on the first batch (LETTER: constrained
  k-means over the whole catalogue), argmin at every level (LETTER: Sinkhorn at the last level
  in training and up to 20 Sinkhorn rounds on colliding groups), a collision digit (LETTER keeps
  colliding IDs), VQ losses summed over levels (LETTER averages), early stopping on validation
  NDCG@10 (LETTER: eval loss), constrained beam search over our own trie, no t5-small vocabulary.
* The default encoder is all-MiniLM-L6-v2 (384-d), not LLaMA-7B (4096-d); under ``paper`` the
  first encoder layer therefore widens 384 -> 2048.
* ``tokenizer=rkmeans`` and ``tokenizer=external`` bypass the regularisers (external IDs are how
  LETTER's published IDs are evaluated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from models.base import FitContext, SequenceData
from models.components.quantizer import (
    RQVAE,
    RQVAEOutput,
    cluster_codewords,
    collaborative_loss,
    diversity_loss,
)
from models.generative import GenerativeConfig, GenerativeRecommender, array_digest
from models.tiger import CPU_QUICK, SMOKE


@dataclass
class LetterConfig(GenerativeConfig):
    cf_weight: float = 0.1  # alpha (Beauty; 0.01 for Instruments)
    diversity_weight: float = 1e-4  # beta
    diversity_clusters: int = 10


class LetterRegularizer:
    """``extra_loss`` for ``train_rqvae``: ``alpha * L_CF + beta * mean_l L_div``.

    ``teacher`` holds the teacher vectors of the tokenizer's input rows (row ``i`` = item
    ``i + 1``). Codeword clusters are recomputed whenever the epoch changes.
    """

    def __init__(
        self,
        teacher: torch.Tensor,
        projection: nn.Module | None,
        cf_weight: float,
        diversity_weight: float,
        n_clusters: int,
        seed: int,
    ):
        self.teacher = teacher
        self.projection = projection
        self.cf_weight = cf_weight
        self.diversity_weight = diversity_weight
        self.n_clusters = n_clusters
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.labels: torch.Tensor | None = None
        self.epoch = -1

    def __call__(
        self, model: RQVAE, out: RQVAEOutput, index: torch.Tensor, epoch: int
    ) -> torch.Tensor:
        books = model.quantizer.codebooks
        if self.teacher.device != books.device:  # the tokenizer trains on the run's device
            self.teacher = self.teacher.to(books.device)
            if self.projection is not None:
                self.projection.to(books.device)  # in place: the optimizer keeps its params
        loss = self.cf_weight * collaborative_loss(
            out.z_q, self.teacher[index.to(books.device)].to(out.z_q), self.projection
        )
        if self.diversity_weight:
            if epoch != self.epoch:
                labels = cluster_codewords(books.detach().cpu(), self.n_clusters, self.seed + epoch)
                self.labels, self.epoch = labels.to(books.device), epoch
            div = [
                diversity_loss(query, book, codes, labels, self.generator)
                for query, book, codes, labels in zip(
                    out.quantized.unbind(1), books, out.codes.unbind(1), self.labels
                )
            ]
            loss = loss + self.diversity_weight * torch.stack(div).mean()
        return loss


class LETTER(GenerativeRecommender):
    """LETTER (CIKM 2024): TIGER with collaborative and diversity regularised semantic IDs."""

    name = "letter"
    BUILDS_ON = "tiger"
    Config = LetterConfig
    needs_teacher: ClassVar[bool] = True
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {**SMOKE, "diversity_clusters": 2},
        "quick": CPU_QUICK,
        "paper": {
            "levels": 4,
            "codebook_size": 256,
            "rq_hidden": (2048, 1024, 512, 256, 128, 64),
            "rq_latent": 32,
            "rq_epochs": 20000,
            "rq_batch_size": 1024,
            "rq_lr": 1e-3,
            "lr": 5e-4,
            "weight_decay": 0.01,
            "batch_size": 1024,
            "warmup_steps": 250,  # 1% of 200 epochs x 128 steps on Beauty
            "epochs": 200,
            "patience": 20,
            "beam_size": 20,
        },
    }

    def tokenizer_key(self, data: SequenceData, ctx: FitContext) -> dict[str, Any]:
        c = self.config
        teacher = np.ascontiguousarray(ctx.teacher_embeddings(), dtype=np.float32)
        return {
            **super().tokenizer_key(data, ctx),
            "teacher": array_digest(teacher),
            "cf_weight": c.cf_weight,
            "diversity_weight": c.diversity_weight,
            "diversity_clusters": c.diversity_clusters,
        }

    def tokenizer_regularizer(
        self, embeddings: np.ndarray, ctx: FitContext
    ) -> tuple[LetterRegularizer, list[nn.Parameter]]:
        c = self.config
        teacher = torch.as_tensor(ctx.teacher_embeddings()[1:], dtype=torch.float32)
        projection = None
        if teacher.shape[1] != c.rq_latent:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.tokenizer_seed(ctx))
                projection = nn.Linear(c.rq_latent, teacher.shape[1])
        regularizer = LetterRegularizer(
            teacher,
            projection,
            c.cf_weight,
            c.diversity_weight,
            c.diversity_clusters,
            self.tokenizer_seed(ctx),
        )
        return regularizer, [] if projection is None else list(projection.parameters())
