"""Typed, keyword-only configuration of the two trainings (retrieval towers, scoring MLP)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias, get_args

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.rerankers.mlp import PairFeatures

__all__ = ["NEGATIVE_SAMPLINGS", "NegativeSampling", "RetrievalConfig", "ScoringConfig", "TrainingConfig"]

NegativeSampling: TypeAlias = Literal["popularity", "uniform"]
"""How implicit-feedback training draws the items a user did *not* interact with:
``"popularity"`` in proportion to (training events of the item) ** 0.75 (word2vec's
smoothing), ``"uniform"`` evenly over the catalogue."""

NEGATIVE_SAMPLINGS: tuple[NegativeSampling, ...] = get_args(NegativeSampling)


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not value > 0:
        raise InvalidInputError(f"{name} must be positive, got {value!r}")


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise InvalidInputError(f"{name} must be in [0, 1), got {value!r}")


@dataclass(frozen=True, kw_only=True)
class RetrievalConfig:
    """The two-tower retrieval model and its in-batch softmax training.

    Each tower maps an id string to ``output_dim`` floats: StringLookup ->
    Embedding(``embedding_dim``) [+ projected side features] -> Dense layers
    (``hidden_layers``, ReLU) -> Dense(``output_dim``). The score of a pair is the
    dot product of the two outputs (higher is better).

    Attributes:
        embedding_dim: width of the per-id embedding tables.
        output_dim: width of the tower outputs (the notebook's 32).
        hidden_layers: ReLU layer widths between embedding and output.
        use_side_features: add projected side features (e.g. genres, age,
            occupation) to the id embedding when they are given.
        epochs: maximum passes of retrieval-only training before the scoring
            stage. The default 0 skips it: the towers then learn in the scoring
            stage from both losses at once (``ScoringConfig.fine_tune_towers``),
            which measured better on both metrics than pre-training first
            (see ``benchmarks/train_quality.py``).
        batch_size: events per step; the other items of a batch are the negatives.
        learning_rate: Adam step size.
        temperature: logits are divided by it; smaller is sharper.
        popularity_correction: subtract log(item frequency) from the logits
            ("logQ correction"): in-batch negatives are drawn by popularity, so
            without it popular items are over-penalised.
        remove_accidental_hits: ignore a batch negative that is the positive item.
        l2: L2 penalty on the embedding rows used in a batch.
        validation_fraction: share of training events held out to choose the
            epoch (early stopping on top-``k`` accuracy); 0 trains all ``epochs``.
        patience: epochs without improvement before stopping.
        validation_k: k of the top-k accuracy used for early stopping.
    """

    embedding_dim: int = 64
    output_dim: int = 32
    hidden_layers: tuple[int, ...] = ()
    use_side_features: bool = False
    epochs: int = 0
    batch_size: int = 1024
    learning_rate: float = 0.003
    temperature: float = 0.1
    popularity_correction: bool = True
    remove_accidental_hits: bool = True
    l2: float = 0.0
    validation_fraction: float = 0.05
    patience: int = 2
    validation_k: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or self.epochs < 0:
            raise InvalidInputError(f"epochs must be >= 0, got {self.epochs!r}")
        for name in (
            "embedding_dim",
            "output_dim",
            "batch_size",
            "learning_rate",
            "temperature",
            "patience",
            "validation_k",
        ):
            _positive(name, getattr(self, name))
        for width in self.hidden_layers:
            _positive("hidden layer width", width)
        _fraction("validation_fraction", self.validation_fraction)
        if self.l2 < 0:
            raise InvalidInputError(f"l2 must be >= 0, got {self.l2}")


@dataclass(frozen=True, kw_only=True)
class ScoringConfig:
    """The scoring (reranking) MLP: ``[u, v]`` from the towers -> a score, higher is better.

    What it learns depends on the feedback. Explicit (the log has ratings):
    the rating, by mean squared error. Implicit (``ratings is None``): how
    likely the user is to interact with the item, by binary cross-entropy of
    the log's events (label 1) against ``negatives`` items sampled per event
    (label 0); its output is then that probability's logit.

    Attributes:
        hidden_layers: ReLU layer widths; the output layer has one linear unit.
        features: the first layer's input; see
            :data:`two_stage_rec.rerankers.mlp.PairFeatures`.
        linear_term: add a linear unit on the first layer's input to the
            MLP's output (wide & deep): per-user and per-item offsets through
            ``u`` and ``v``, a weighted dot product through ``u * v``. The
            export folds it into the MLP's layers (two units wider per hidden
            layer, the same scores, the same file format).
        fine_tune_towers: let the rating (or relevance) loss train the towers too (with
            ``retrieval_weight`` times the retrieval loss kept in the objective
            so the towers still retrieve); False trains the MLP alone on frozen
            tower outputs, as the notebook's scoring model was.
        retrieval_weight: weight of the in-batch softmax while fine-tuning.
        tower_l2: L2 penalty on the tower outputs of a batch while fine-tuning.
        epochs: maximum passes over the training events.
        batch_size: events (positives) per step.
        learning_rate: Adam step size (the peak, with a cosine schedule).
        learning_rate_schedule: ``"cosine"`` (decay to 5 % over ``epochs``) or ``"constant"``.
        l2: L2 penalty on the MLP weights.
        dropout: dropout rate after each hidden layer while training (the
            exported model, an inference model, has none). The defaults
            (dropout 0.2, 8 epochs) were chosen on a validation split carved
            from the ``u1`` training ratings (90/10, seed 7): validation RMSE
            0.9015 (median of 3 seeds) against 0.9046 (2 seeds) for the
            former dropout 0 and 6 epochs; ``benchmarks/train_quality.py``
            records the configurations tried.
        validation_fraction: share of training events held out for early
            stopping (explicit: on RMSE; implicit: on the AUC of the held-out
            events against a fixed sample of negatives); 0 trains all ``epochs``.
        patience: epochs without improvement before stopping (best weights kept).
        negatives: implicit feedback only: items sampled per event as
            negatives. A sampled item the user did interact with is not
            counted as a negative.
        negative_sampling: implicit feedback only: how negatives are drawn;
            see :data:`NegativeSampling`. Uniform measured better on
            MovieLens-100K as implicit feedback (validation NDCG@10 of the
            scoring model's reranking 0.149 against 0.111 with popularity
            sampling; see ``benchmarks/results/implicit_quality.json``).
    """

    hidden_layers: tuple[int, ...] = (64, 32)
    features: PairFeatures = "concat_product"
    linear_term: bool = False
    fine_tune_towers: bool = True
    retrieval_weight: float = 1.0
    tower_l2: float = 0.5
    epochs: int = 8
    batch_size: int = 1024
    learning_rate: float = 0.005
    learning_rate_schedule: Literal["cosine", "constant"] = "cosine"
    l2: float = 0.0
    dropout: float = 0.2
    validation_fraction: float = 0.05
    patience: int = 2
    negatives: int = 4
    negative_sampling: NegativeSampling = "uniform"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "learning_rate", "patience", "negatives"):
            _positive(name, getattr(self, name))
        for width in self.hidden_layers:
            _positive("hidden layer width", width)
        _fraction("validation_fraction", self.validation_fraction)
        if self.features not in ("concat", "concat_product"):
            raise InvalidInputError(f"features must be 'concat' or 'concat_product', got {self.features!r}")
        if self.learning_rate_schedule not in ("cosine", "constant"):
            raise InvalidInputError(
                f"learning_rate_schedule must be 'cosine' or 'constant', got {self.learning_rate_schedule!r}"
            )
        if self.negative_sampling not in NEGATIVE_SAMPLINGS:
            raise InvalidInputError(
                f"negative_sampling must be one of {', '.join(NEGATIVE_SAMPLINGS)}, got {self.negative_sampling!r}"
            )
        _fraction("dropout", self.dropout)
        for name in ("l2", "tower_l2", "retrieval_weight"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Everything :func:`two_stage_rec.training.train_models` needs besides the data.

    Attributes:
        retrieval: the towers.
        scoring: the scoring MLP.
        seed: seeds Python, numpy and TensorFlow; with op determinism on, the
            same seed on the same machine gives the same weights.
        ensemble: number of models trained (different seeds) and served as
            one: towers side by side (output width ``ensemble *
            retrieval.output_dim``), scoring MLPs averaged. Costs that many
            trainings and that much wider vectors and MLP at serving.
        eval_k: k of the reported top-k accuracies (each k in the tuple).
    """

    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    seed: int = 42
    eval_k: tuple[int, ...] = (1, 5, 10, 50, 100)
    ensemble: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.ensemble, bool) or not isinstance(self.ensemble, int) or self.ensemble < 1:
            raise InvalidInputError(f"ensemble must be an int >= 1, got {self.ensemble!r}")
        for k in self.eval_k:
            _positive("eval_k", k)
        if self.retrieval.epochs == 0 and not self.scoring.fine_tune_towers:
            raise InvalidInputError(
                "retrieval.epochs=0 leaves the towers untrained unless scoring.fine_tune_towers is True"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return asdict(self)
