"""GRU4Rec (Hidasi et al. 2016) on CPU torch: the neural next-item model of issue 13 (ML-005).

An item embedding, one GRU layer and a linear output over every training item (full
softmax: DeskDrop has about two thousand items), trained with cross-entropy on the next item
at every position of the training sessions (padded mini-batches instead of the paper's
session-parallel ones; same loss). Items unseen in training read as one "unknown" input and
are never predicted. Seeded, with the torch thread count set for the fit and restored after.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ml_app.session_models import Session, SessionModel

PAD, UNKNOWN = 0, 1
MAX_LENGTH = 50  # longer training sessions keep their first 50 items


class _Net(nn.Module):
    def __init__(self, vocabulary: int, embedding: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary, embedding, padding_idx=PAD)
        self.gru = nn.GRU(embedding, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocabulary)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.drop(self.embed(items)))
        logits: torch.Tensor = self.out(self.drop(states))
        return logits


class GRU4Rec(SessionModel):
    """GRU4Rec with full softmax; ``epochs``, sizes and ``seed`` fixed by the caller.

    The defaults won a small sweep on a validation split inside the training period (the last
    20% of the training sessions), never on the test period. One torch thread: on a shared
    2-core machine two threads made a tiny fit 36 times slower.
    """

    def __init__(
        self,
        *,
        epochs: int = 10,
        embedding: int = 128,
        hidden: int = 256,
        batch_size: int = 32,
        learning_rate: float = 0.003,
        dropout: float = 0.2,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        self.epochs, self.embedding, self.hidden = epochs, embedding, hidden
        self.batch_size, self.learning_rate, self.dropout = batch_size, learning_rate, dropout
        self.seed, self.threads = seed, threads
        self.name = f"GRU4Rec ({epochs} epochs, {hidden} units)"
        self.index: dict[str, int] = {}
        self.ids: list[str] = []
        self.net: _Net | None = None
        self.losses: list[float] = []

    def _encode(self, items: Sequence[str]) -> list[int]:
        return [self.index.get(item, UNKNOWN) for item in items]

    def fit(self, train: Sequence[Session], cut: int) -> None:
        self.ids = ["", "", *sorted({item for s in train for item in s.items})]
        self.index = {item: i for i, item in enumerate(self.ids) if i > UNKNOWN}
        sequences = [self._encode(s.items[:MAX_LENGTH]) for s in train]
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            torch.manual_seed(self.seed)
            generator = torch.Generator().manual_seed(self.seed)
            net = _Net(len(self.ids), self.embedding, self.hidden, self.dropout)
            optimiser = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            loss_of = nn.CrossEntropyLoss(ignore_index=PAD)
            net.train()
            # Batches of similar lengths (little padding), visited in a seeded random order.
            by_length = sorted(range(len(sequences)), key=lambda i: (len(sequences[i]), i))
            batches_of = [
                by_length[start : start + self.batch_size]
                for start in range(0, len(by_length), self.batch_size)
            ]
            for _ in range(self.epochs):
                order = torch.randperm(len(batches_of), generator=generator).tolist()
                total = batches = 0.0
                for number in order:
                    chunk = [sequences[i] for i in batches_of[number]]
                    width = max(len(seq) for seq in chunk)
                    batch = torch.tensor([seq + [PAD] * (width - len(seq)) for seq in chunk])
                    logits = net(batch[:, :-1])
                    loss = loss_of(logits.reshape(-1, len(self.ids)), batch[:, 1:].reshape(-1))
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total, batches = total + loss.item(), batches + 1
                self.losses.append(total / max(1.0, batches))
            net.eval()
            self.net = net
        finally:
            torch.set_num_threads(threads)

    def predict_session(self, items: Sequence[str], k: int) -> list[list[str]]:
        if self.net is None:
            raise RuntimeError("GRU4Rec.predict_session before fit")
        encoded = self._encode(items)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                logits = self.net(torch.tensor([encoded[:-1]]))[0]
        finally:
            torch.set_num_threads(threads)
        logits[:, PAD] = logits[:, UNKNOWN] = float("-inf")
        rows = torch.arange(len(encoded) - 1)
        last = torch.tensor(encoded[:-1])
        known = last > UNKNOWN
        logits[rows[known], last[known]] = float("-inf")  # never the current item
        values, indices = torch.topk(logits, min(k, len(self.ids)), dim=1)
        return [
            [self.ids[i] for i, v in zip(row, scores, strict=True) if v != float("-inf")]
            for row, scores in zip(indices.tolist(), values.tolist(), strict=True)
        ]

    def recommend(self, prefix: Sequence[str], k: int) -> list[str]:
        return self.predict_session([*prefix, ""], k)[-1]
