"""Classic sequential baselines: RecBole 1.2.1 model classes trained by our own loop.

RecBole's Trainer is not used (its checkpoints do not load under torch >= 2.6, and we want one
training/early-stopping/scoring path for every model). The loop: cross-entropy over all items
(RecBole ``loss_type: CE``), Adam, early stopping on the harness's validation NDCG@10.

Adding another RecBole sequential model whose ``calculate_loss`` reads only the item sequence, its
length and the target (SASRec, GRU4Rec, NARM, STAMP, ...) is one line at the bottom of this file
plus one line in ``models/catalog.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from models.base import FitContext, ModelConfig, NetModel, SequenceData
from models.training import pad_histories, train_epochs_with_resume


@dataclass
class RecBoleSeqConfig(ModelConfig):
    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    dropout: float = 0.5
    eval_batch_size: int = 1024


class _DatasetStub:
    """The two things RecBole's sequential model constructors read from a Dataset."""

    def __init__(self, n_items: int, n_users: int):
        self._nums = {"item_id": n_items + 1, "user_id": n_users + 1}

    def num(self, field: str) -> int:
        return self._nums[field]


class RecBoleSequential(NetModel):
    """Wraps one RecBole sequential model class; subclasses set ``recbole_name``."""

    recbole_name: ClassVar[str] = ""
    Config = RecBoleSeqConfig
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"epochs": 2, "hidden_size": 16, "inner_size": 32, "n_layers": 1},
        "quick": {"epochs": 100, "patience": 5, "lr": 2e-3},
        "paper": {"epochs": 200, "patience": 10, "hidden_size": 64},
    }
    SEARCH_SPACE: ClassVar[dict[str, tuple]] = {
        "lr": ("float", 1e-4, 1e-2, "log"),
        "weight_decay": ("float", 1e-6, 1e-2, "log"),
        "dropout": ("float", 0.1, 0.5),
        "hidden_size": ("categorical", [32, 64, 128]),
    }

    def _recbole_settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "hidden_size": c.hidden_size,
            "embedding_size": c.hidden_size,
            "n_layers": c.n_layers,
            "num_layers": c.n_layers,
            "n_heads": c.n_heads,
            "inner_size": c.inner_size,
            "hidden_dropout_prob": c.dropout,
            "attn_dropout_prob": c.dropout,
            "dropout_prob": c.dropout,
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "device": "cpu",
        }

    def fit(self, data: SequenceData, ctx: FitContext) -> None:
        from models.recbole_compat import build_model, interaction

        c = self.config
        self.device = ctx.device
        settings = self._recbole_settings()
        settings["MAX_ITEM_LIST_LENGTH"] = data.max_history
        self.net = build_model(
            self.recbole_name, settings, _DatasetStub(data.n_items, data.n_users)
        )
        self.net.to(self.device)
        self._interaction = interaction
        self.max_history = data.max_history

        # Pre-tensorised once: padded histories, lengths, targets.
        seqs = pad_histories(data.train_histories, data.max_history)
        lengths = torch.as_tensor([len(h) for h in data.train_histories])
        targets = torch.as_tensor(data.train_targets, dtype=torch.long)
        optim = torch.optim.Adam(self.net.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        generator = torch.Generator().manual_seed(ctx.seed)

        def run_epoch(epoch: int) -> dict[str, Any]:
            self.net.train()
            # the shuffle of epoch e is a function of (seed, e): resume needs no generator state
            generator.manual_seed(ctx.seed * 1000 + epoch)
            order = torch.randperm(len(targets), generator=generator)
            # the loss is summed on the device and read once per epoch (no sync per step)
            total, batches = torch.zeros((), device=self.device), list(order.split(c.batch_size))
            for idx in ctx.progress(batches, desc=f"{self.name} epoch {epoch}"):
                batch = interaction(seqs[idx], lengths[idx], targets[idx], self.device)
                loss = self.net.calculate_loss(batch)
                optim.zero_grad()
                loss.backward()
                optim.step()
                total += loss.detach()
            return {"loss": float(total) / max(len(batches), 1)}

        stopper = train_epochs_with_resume(
            self,
            ctx,
            stage="recommender",
            epochs=c.epochs,
            patience=c.patience,
            optimizer=optim,
            scheduler=None,  # RecBole's recipe: Adam at a constant rate
            run_epoch=run_epoch,
        )
        self.diagnostics["best_epoch"] = stopper.best_epoch

    @torch.no_grad()
    def score_all(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """Scores over all item ids (column 0 = padding, set to -inf)."""
        self.net.eval()
        seqs = pad_histories([list(h) for h in histories], self.max_history)
        lengths = torch.as_tensor([max(len(h), 1) for h in histories])
        batch = self._interaction(seqs, lengths, None, self.device)
        scores = self.net.full_sort_predict(batch).view(len(histories), -1)
        scores[:, 0] = -float("inf")
        return scores

    def recommend(self, histories: Sequence[Sequence[int]], k: int) -> torch.Tensor:
        out = []
        for start in range(0, len(histories), self.config.eval_batch_size):
            chunk = histories[start : start + self.config.eval_batch_size]
            out.append(torch.topk(self.score_all(chunk), k, dim=1).indices.cpu())
        return torch.cat(out)

    def item_embeddings(self) -> torch.Tensor:
        """The trained item embedding table (row 0 = padding): the teacher for LETTER/UniGRec."""
        return self.net.item_embedding.weight.detach().cpu().clone()


class SASRec(RecBoleSequential):
    """Kang & McAuley, ICDM 2018: causal self-attention over the item sequence."""

    name = "sasrec"
    recbole_name = "SASRec"


class GRU4Rec(RecBoleSequential):
    """Hidasi et al., ICLR 2016 (RecBole's session-parallel-free variant): a GRU over items."""

    name = "gru4rec"
    recbole_name = "GRU4Rec"
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        **RecBoleSequential.PROFILES,
        "quick": {"epochs": 100, "patience": 5, "lr": 2e-3, "dropout": 0.3},
    }


class NARM(RecBoleSequential):
    """Li et al., CIKM 2017: GRU encoder with attention over the session."""

    name = "narm"
    recbole_name = "NARM"
