"""Baseline models that map spike windows to the same patch targets as Neurrator (paper A.6).

Every baseline sees the same spike features (:func:`window_features`) and regresses onto, or
averages, the same target coefficients (a :class:`~neurrator.core.linalg.PCABasis` of the
*training* frames, mapped back to full patch tensors by the basis). The benchmark wraps these
models in adapters (:mod:`neurrator.evaluate.methods`) that apply the one budget rule.

- :class:`RidgePatches`: standardised features → ridge → target coefficients (closed form).
- :class:`MLPPatches`: a one-hidden-layer torch MLP → target coefficients, trained a block of
  optimizer steps at a time (:meth:`MLPPatches.train_steps`) so the caller can validate and
  stop early.
- :class:`KNNPatches`: cosine kNN over training-window embeddings; a window's prediction is
  the mean of its neighbours' target coefficients (it can only answer with training frames).
- :func:`pca_embedding` and :func:`cebra_estimator`: the embeddings of PCA+kNN and CEBRA+kNN
  (the real ``cebra`` package, sklearn API, ``offset1-model``).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from neurrator.preprocess.types import NeuralDataset


def window_features(dataset: NeuralDataset, pairs: np.ndarray, *, n_chunks: int = 2, batch_size: int = 512) -> np.ndarray:
    """Spike features of ``(repeat, frame)`` pairs (n, 2) → (n, n_chunks × n_units) float32.

    Each window (``dataset.window`` bins) is cut into ``n_chunks`` near-equal runs of bins and
    averaged within each, so early and late responses stay apart.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    edges = np.linspace(0, dataset.window, n_chunks + 1).round().astype(int)
    out = np.empty((len(pairs), n_chunks * dataset.n_units), dtype=np.float32)
    for start in range(0, len(pairs), batch_size):
        w = dataset.windows(pairs[start : start + batch_size])  # (b, window, n_units)
        chunks = [w[:, a:b].mean(axis=1) for a, b in itertools.pairwise(edges)]
        out[start : start + len(w)] = np.concatenate(chunks, axis=1)
    return out


class RidgePatches:
    """Ridge regression from spike features to target coefficients (with feature standardisation)."""

    def __init__(self, alpha: float = 100.0):
        self.alpha = alpha

    def fit(self, features: np.ndarray, coefs: np.ndarray) -> RidgePatches:
        self.model_ = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha))
        self.model_.fit(features, coefs)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model_.predict(features).astype(np.float32)

    @property
    def n_parameters(self) -> int:
        ridge = self.model_[-1]
        return int(ridge.coef_.size + np.size(ridge.intercept_))


class MLPPatches:
    """A one-hidden-layer MLP (GELU, dropout) from spike features to target coefficients.

    AdamW on the mean-squared error of standardised coefficients, constant learning rate;
    seeded. :meth:`start` sets it up, :meth:`train_steps` takes optimizer steps,
    :meth:`state` / :meth:`load_state` snapshot the weights (for keeping the best ones).
    """

    def __init__(self, hidden: int = 256, *, lr: float = 1e-3, weight_decay: float = 1e-3, dropout: float = 0.2,
                 seed: int = 0):
        self.hidden, self.lr, self.weight_decay, self.dropout, self.seed = hidden, lr, weight_decay, dropout, seed

    def start(self, features: np.ndarray, coefs: np.ndarray) -> MLPPatches:
        self.generator_ = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.x_mean_, self.x_std_ = features.mean(0), features.std(0) + 1e-6
        self.y_mean_, self.y_std_ = coefs.mean(0), coefs.std(0) + 1e-6
        self.x_ = torch.from_numpy(((features - self.x_mean_) / self.x_std_).astype(np.float32))
        self.y_ = torch.from_numpy(((coefs - self.y_mean_) / self.y_std_).astype(np.float32))
        self.model_ = torch.nn.Sequential(
            torch.nn.Linear(self.x_.shape[1], self.hidden), torch.nn.GELU(), torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, self.y_.shape[1]),
        )
        self.optimizer_ = torch.optim.AdamW(self.model_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.order_, self.cursor_ = torch.randperm(len(self.x_), generator=self.generator_), 0
        return self

    def train_steps(self, n_steps: int, batch_size: int) -> None:
        """``n_steps`` optimizer steps on batches drawn without replacement (reshuffled per pass)."""
        self.model_.train()
        batch_size = min(batch_size, len(self.x_))
        for _ in range(n_steps):
            if self.cursor_ + batch_size > len(self.order_):
                self.order_, self.cursor_ = torch.randperm(len(self.x_), generator=self.generator_), 0
            idx = self.order_[self.cursor_ : self.cursor_ + batch_size]
            self.cursor_ += batch_size
            loss = torch.nn.functional.mse_loss(self.model_(self.x_[idx]), self.y_[idx])
            self.optimizer_.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer_.step()
        self.model_.eval()

    def state(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model_.state_dict().items()}

    def load_state(self, state: dict) -> None:
        self.model_.load_state_dict(state)

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        self.model_.eval()
        x = torch.from_numpy(((features - self.x_mean_) / self.x_std_).astype(np.float32))
        return (self.model_(x).numpy() * self.y_std_ + self.y_mean_).astype(np.float32)

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model_.parameters()))


class KNNPatches:
    """Cosine kNN over training-window embeddings; predicts the mean of the neighbours' coefficients."""

    def __init__(self, k: int = 10):
        self.k = k

    def fit(self, embedding: np.ndarray, coefs: np.ndarray) -> KNNPatches:
        self.knn_ = NearestNeighbors(n_neighbors=min(self.k, len(embedding)), metric="cosine").fit(embedding)
        self.train_coefs_ = np.asarray(coefs, dtype=np.float32)
        return self

    def predict(self, embedding: np.ndarray) -> np.ndarray:
        """(n, d) embeddings → (n, n_components) mean coefficients of the k nearest training windows."""
        neighbours = self.knn_.kneighbors(embedding, return_distance=False)
        return self.train_coefs_[neighbours].mean(axis=1)


def pca_embedding(n_components: int, n_samples: int, n_features: int, seed: int = 0) -> Pipeline:
    """Standardise, then PCA to ``min(n_components, n_samples, n_features)`` dimensions."""
    return make_pipeline(StandardScaler(), PCA(n_components=min(n_components, n_samples, n_features), random_state=seed))


def cebra_estimator(output_dimension: int, *, steps_per_call: int, batch_size: int, hidden: int, mode: str,
                    learning_rate: float = 3e-4):
    """A ``cebra.CEBRA`` (``offset1-model``) whose every ``partial_fit`` call takes ``steps_per_call`` steps.

    ``mode``: ``"targets"`` (continuous labels: leading target coefficients, CEBRA-Behavior),
    ``"frame_labels"`` (discrete frame ids) or ``"time"`` (time-contrastive, no labels).
    """
    from cebra import CEBRA

    return CEBRA(
        model_architecture="offset1-model", device="cpu", batch_size=batch_size, max_iterations=steps_per_call,
        output_dimension=output_dimension, num_hidden_units=hidden, conditional="time" if mode == "time" else None,
        time_offsets=1, learning_rate=learning_rate, verbose=False,
    )
