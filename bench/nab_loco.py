"""Leave-one-category-out (LOCO): the NAB figure that predicts a machine never seen.

NAB's corpus-optimized score chooses the threshold on the very files it scores; a
device never sees a label. LOCO chooses everything on some categories and scores
another one, for each category in turn:

1. Hold one category out.
2. On the other categories together, for every candidate detector setting (the same
   series scored with that setting), take NAB's optimized threshold and its normalized
   score; the best (setting, threshold) wins. Ties go to the setting declared first (the
   shipped one leads the grid), then to the higher threshold (NAB's optimizer).
3. Score the held-out category alone at that setting and threshold, normalized against
   its own null and perfect detectors.

The LOCO figure is the mean of the held-out scores, one per category (each category
weighs the same, however many files it has).

Pure Python on top of nab_scoring: the tests import it, the bench runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nab_scoring import LabelledSeries, Profile, normalized, optimize_threshold, score_corpus

Corpus = Sequence[tuple[LabelledSeries, Sequence[float]]]


def category(series: LabelledSeries) -> str:
    """The category of a series named ``<category>/<file>.csv``."""
    head, slash, _ = series.name.partition("/")
    if not slash:
        raise ValueError(f"{series.name}: not named <category>/<file>.csv")
    return head


def categories(corpus: Corpus) -> list[str]:
    """The corpus's categories, sorted."""
    return sorted({category(series) for series, _ in corpus})


def of_categories(corpus: Corpus, wanted: set[str]) -> list[tuple[LabelledSeries, Sequence[float]]]:
    return [(series, scores) for series, scores in corpus if category(series) in wanted]


@dataclass(frozen=True, slots=True)
class Fold:
    """One held-out category: what the others chose, and how it scored there."""

    held_out: str
    setting: str
    threshold: float
    chosen_on: float
    """The winner's normalized score on the other categories (its own optimum)."""
    score: float
    """The held-out category's normalized score at that setting and threshold."""


@dataclass(frozen=True, slots=True)
class Loco:
    profile: Profile
    folds: tuple[Fold, ...]

    @property
    def mean(self) -> float:
        return sum(f.score for f in self.folds) / len(self.folds)


@dataclass(frozen=True, slots=True)
class Choice:
    setting: str
    threshold: float
    score: float
    """Normalized, on the corpus it was chosen on."""


def best_setting(runs: Mapping[str, Corpus], profile: Profile) -> Choice:
    """The (setting, NAB-optimized threshold) with the best normalized score on the
    corpus ``runs`` all score (ties: the setting declared first). Raises ValueError with
    no run."""
    if not runs:
        raise ValueError("no detector setting to choose from")
    first = next(iter(runs.values()))
    # The bounds depend on the labels only: once for every setting.
    null = optimize_threshold([(s, [0.5] * s.rows) for s, _ in first], profile).score
    perfect = profile.a_tp * sum(len(s.windows) for s, _ in first)
    best: Choice | None = None
    for setting, corpus in runs.items():
        sweep = optimize_threshold(corpus, profile)
        score = normalized(sweep.score, null, perfect)
        if best is None or score > best.score:
            best = Choice(setting, sweep.threshold, score)
    assert best is not None  # runs is not empty
    return best


def leave_one_category_out(runs: Mapping[str, Corpus], profile: Profile) -> Loco:
    """LOCO over ``runs`` (setting name -> the whole corpus scored with that setting,
    in declaration order; every run holds the same series in the same order).

    Raises ValueError with no run, runs over different series, or fewer than two
    categories (nothing to hold out against).
    """
    if not runs:
        raise ValueError("no detector setting to choose from")
    names = [[s.name for s, _ in corpus] for corpus in runs.values()]
    if any(n != names[0] for n in names):
        raise ValueError("every setting must score the same series in the same order")
    held_outs = categories(next(iter(runs.values())))
    if len(held_outs) < 2:
        raise ValueError(f"leave-one-category-out needs two categories or more, not {held_outs}")
    folds = []
    for held in held_outs:
        others = set(held_outs) - {held}
        chosen = best_setting(
            {name: of_categories(corpus, others) for name, corpus in runs.items()}, profile
        )
        held_scored = score_corpus(
            of_categories(runs[chosen.setting], {held}), profile, chosen.threshold
        )
        folds.append(Fold(held, chosen.setting, chosen.threshold, chosen.score, held_scored.score))
    return Loco(profile, tuple(folds))


def per_category(corpus: Corpus, profile: Profile, threshold: float | None) -> dict[str, float]:
    """Each category's normalized score alone: at ``threshold``, or at its own
    optimized threshold when None."""
    return {
        name: score_corpus(of_categories(corpus, {name}), profile, threshold).score
        for name in categories(corpus)
    }
