"""What every column of a run's tables means, in one plain sentence.

The report shows the saved tables with their CSV column names (``p_within_3``, ``iqr_rank``,
``total_p05_low``), which a referee reading the report alone cannot decode. :func:`describe` turns
a name into a sentence by the rules that produced it: a few families of numbered or prefixed names,
suffixes that extend another column (``_se``, ``_low``/``_high``, ``_conf``), the index tree's
aggregate codes and the units' attributes, and a dictionary for the rest. Every meaning is taken
from the code that writes the column, and thresholds are read from it rather than restated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from nqpf_sens.audit.coherence import (
    KURTOSIS_THRESHOLD,
    REDUNDANT_THRESHOLD,
    SKEW_THRESHOLD,
    WEAK_THRESHOLD,
)
from nqpf_sens.audit.optimal_weights import (
    BOUND,
    MAX_RESTARTS,
    RESTART_GAIN,
    SETTLED_RESTARTS,
)
from nqpf_sens.indices.nqpf.paper import OUTPUTS, REGION_ORDER
from nqpf_sens.uncertainty.convergence import BLOCKS
from nqpf_sens.uncertainty.sobol import MAX_INTERVAL, MIN_BASE_SAMPLES, MIN_RANK_SD
from nqpf_sens.uncertainty.statistics import CONFIDENCE as QUANTILE_CONFIDENCE
from nqpf_sens.uncertainty.study import KEPT_SCORES_BYTES, MAX_KEPT_SCORES, MIN_KEPT_SCORES

INDEX = "total"  # the index's own column

# How the ``_low``/``_high`` (and ``_se``, ``_conf``) columns that extend a column are computed.
ORDER = "order"  # a distribution-free interval for a quantile over scenarios (order statistics)
UNITS = "units"  # a percentile bootstrap over the units (importance against weights)
SOBOL = "sobol"  # a bootstrap over the design's base samples (Sobol indices)
SHARE = "share"  # a share of scenarios: a binomial Monte Carlo standard error
MEAN = "mean"  # a mean over scenarios: its standard deviation over the root of their number


#: when the principal components of an aggregate's parts are undefined
NO_COMPONENTS = (
    "empty when a part has the same value for every unit, or fewer than two units have every "
    "part observed (each part is scaled to variance 1, which R's prcomp refuses then too)"
)


@dataclass(frozen=True)
class _Meaning:
    """A noun phrase that other meanings can extend (``what``), a remark for this column alone
    (``note``), and how the columns extending it are computed (``error``: ORDER, UNITS, ...)."""

    what: str
    note: str = ""
    error: str = ""

    def sentence(self) -> str:
        text = self.what[0].upper() + self.what[1:]
        return f"{text}; {self.note}." if self.note else f"{text}."


@dataclass(frozen=True)
class _Context:
    aggregates: tuple[str, ...]
    attributes: tuple[str, ...]
    interval: float
    confidence: float

    @cached_property
    def attribute_names(self) -> frozenset[str]:
        """The attributes, looked up in constant time (a data file may have thousands)."""
        return frozenset(self.attributes)


def _percent(level: float) -> str:
    return f"{100 * level:g}%"


def _percentile(q: float) -> str:
    """``0.05`` -> ``5th percentile``, ``0.025`` -> ``2.5th percentile``."""
    value = round(100 * q, 6)
    if value == int(value) and int(value) % 100 not in (11, 12, 13):
        ending = {1: "st", 2: "nd", 3: "rd"}.get(int(value) % 10, "th")
    else:
        ending = "th"
    return f"{value:g}{ending} percentile"


def _statistic(name: str, interval: float) -> str:
    """The quantile a band's name stands for: ``median``, ``p05``, ``interval_low`` ..."""
    tail = (1 - interval) / 2
    quantiles = {"p05": 0.05, "p95": 0.95, "interval_low": tail, "interval_high": 1 - tail}
    return "the median" if name == "median" else f"the {_percentile(quantiles[name])}"


BAND_STATISTICS = ("median", "p05", "p95", "interval_low", "interval_high")
RESCALED = (
    "when the normalisation varies, each scenario's scores are first rescaled to the nominal "
    "mean and spread across units"
)
R_S = "R_S: the average number of places units move from their nominal rank in a scenario"
SOBOL_OUTPUTS = {  # the output, and what a reader must know about it
    "rank_shift": ("the mean rank shift R_S", R_S),
    "ranks": (
        "all units' ranks together",
        "each unit's rank weighted by its variance (Gamboa et al. 2014), so ranks that hardly "
        "vary count little",
    ),
}
STATUSES = {
    "official": "an official statistic",
    "paper": "a value the paper states",
    "reconstructed": "a reconstruction consistent with the paper, not an observation",
    "derived": "computed from other figures",
    "missing": "no value",
}


def _probability(event: str, note: str = "") -> _Meaning:
    """The share of scenarios in which ``event`` happens, with its binomial standard error."""
    return _Meaning(f"the probability (share of scenarios) that {event}", note, SHARE)


EXACT: dict[str, _Meaning] = {
    # units, scores, ranks and tiers
    "unit": _Meaning("the unit (e.g. a province or country) the row is about"),
    "year": _Meaning("the year of the data (a column only when the data hold several years)"),
    INDEX: _Meaning(
        "the unit's index score under the nominal pipeline (the config's own choices)",
        "higher is better",
    ),
    "rank": _Meaning(
        "the unit's rank by index score, 1 being the highest",
        "in the baseline scores under the nominal pipeline, in a what-if table after the change",
    ),
    "tier": _Meaning(
        "the unit's tier under the nominal pipeline, 1 being the top tier",
        "tiers are cut by the config's [tiers] rule",
    ),
    "nominal_rank": _Meaning("the unit's rank under the nominal pipeline (1 = highest score)"),
    "nominal_tier": _Meaning("the unit's tier under the nominal pipeline (1 = top tier)"),
    # the paper's Table 3
    "paper": _Meaning("the value printed in Table 3 of Ye & Xu (2024)"),
    "reproduced": _Meaning(
        "the same value computed here with the nominal pipeline",
        "a sub-index rank is recomputed from the reproduced scores",
    ),
    "difference": _Meaning("the reproduced value minus the paper's"),
    "output": _Meaning(
        "what the row is about: in the paper comparison, a number of Table 3 "
        f"({', '.join(OUTPUTS)}, or a rank: name_rank); in the Sobol tables, the output "
        "analysed: a unit's rank (rank:<unit>), its index score (score:<unit>), the mean rank "
        "shift R_S (rank_shift) or all ranks together (all_ranks); for data of several years, "
        "ranks and scores are the last year's, R_S pools every year"
    ),
    # rank stability
    "median_rank": _Meaning("the median of the unit's rank across scenarios", error=ORDER),
    "mean_rank": _Meaning("the mean of the unit's rank across scenarios", error=MEAN),
    "p05_rank": _Meaning(
        "the 5th percentile of the unit's rank across scenarios",
        "at least 5% of scenarios rank the unit here or better (1 = best)",
        ORDER,
    ),
    "p95_rank": _Meaning(
        "the 95th percentile of the unit's rank across scenarios",
        "at most 5% of scenarios rank the unit worse",
        ORDER,
    ),
    "iqr_rank": _Meaning(
        "the interquartile range of the unit's rank: its 75th minus its 25th percentile rank "
        "across scenarios, in places",
        "0 means the middle half of the scenarios agree on one rank",
    ),
    "p_nominal_rank": _probability("the unit keeps exactly its nominal rank"),
    "monte_carlo_p05_rank": _Meaning(
        "the 5th percentile of the unit's rank in the Monte Carlo scenarios (every factor "
        "varying), beside the exact bounds for comparison",
        error=ORDER,
    ),
    "monte_carlo_p95_rank": _Meaning(
        "the 95th percentile of the unit's rank in the Monte Carlo scenarios (every factor "
        "varying), beside the exact bounds for comparison",
        error=ORDER,
    ),
    "monte_carlo_scenarios": _Meaning(
        "the number of Monte Carlo scenarios behind the percentile ranks beside the exact bounds "
        "(the bounds themselves are exact: no sample)"
    ),
    # tiers and score bands
    "most_likely_tier": _Meaning(
        "the tier the unit falls in most often across scenarios",
        "by point estimate, on a tie the better tier; compare p_tier_<k> within their standard "
        "errors before calling one tier likelier than another",
    ),
    "p_nominal_tier": _probability("the unit stays in its nominal tier"),
    "scenarios": _Meaning(
        "the number of scenarios behind the row's estimates",
        "in a Sobol run only the design's two independent samples (rows A and B) count, except "
        "for ST in the convergence table; in the regions table, the subsample whose scores are "
        "kept",
    ),
    "score_scenarios": _Meaning(
        "the number of scenarios behind the score bands",
        f"those of the design's first base samples, at most {MAX_KEPT_SCORES:,} scenarios (all "
        "when fewer; fewer for an index so large that their scores would pass "
        f"{KEPT_SCORES_BYTES // 2**20} MiB, never fewer than {MIN_KEPT_SCORES:,})",
    ),
    # regions
    "region": _Meaning("the region the row is about"),
    "nominal_mean": _Meaning("the mean nominal index score of the region's units"),
    "median": _Meaning(
        "the median over scenarios of the region's mean index score", RESCALED, ORDER
    ),
    "p05": _Meaning(
        "the 5th percentile over scenarios of the region's mean index score", RESCALED, ORDER
    ),
    "p95": _Meaning(
        "the 95th percentile over scenarios of the region's mean index score", RESCALED, ORDER
    ),
    "p_below_nominal": _probability(
        "the region's mean index score is below its nominal mean", "beyond rounding; " + RESCALED
    ),
    "p_above_nominal": _probability(
        "the region's mean index score is above its nominal mean", "beyond rounding; " + RESCALED
    ),
    "p_paper_order": _probability(
        f"the regions' mean index scores keep the paper's order {' > '.join(REGION_ORDER)}",
        "the same on every row; empty unless all four regions are present",
    ),
    # rank shift, rank agreement, convergence
    "statistic": _Meaning("the name of the row's statistic (each is explained in this glossary)"),
    "value": _Meaning(
        "the value of the row's statistic", "in the convergence table, computed on all scenarios"
    ),
    "item": _Meaning(
        "what the row's statistic is about: a unit (its rank percentiles), 'all' (the mean rank "
        "shift) or a factor (its ST)"
    ),
    "blocks": _Meaning(
        "the number of blocks with a value: all of them, except for the ST of the rank shift, "
        "which is undefined (empty) in a block where the rank shift does not vary"
    ),
    "standard_error": _Meaning(
        "the Monte Carlo standard error of value: the standard deviation of the block values "
        "divided by the square root of their number (the blocks with a value); when a Monte "
        "Carlo run keeps fewer scenarios' rows than it counts, times the square root of kept "
        "over counted scenarios, the error of the value from every scenario",
        "how far value may be from what infinitely many scenarios would give",
    ),
    "flip_error": _Meaning(
        "for a rank percentile, its root mean square error in places from the shares of all "
        "scenarios at the ranks around it: large where such a share lies within sampling error "
        "of the percentile's level, so that the value could be the next rank the scenarios hold",
        "the blocks (standard_error) understate such an error; it assumes independent scenarios "
        "(on a Sobol design it overstates); empty for other statistics",
    ),
    "rank_shift_mean": _Meaning(
        "the mean rank shift R_S, averaged over scenarios", R_S, error=MEAN
    ),
    "share_unchanged": _Meaning(
        "the share of all (unit, scenario) pairs in which the unit keeps its nominal rank",
        error=SHARE,
    ),
    "spearman_mean": _Meaning(
        "the mean over scenarios of Spearman's rank correlation between the scenario's ranking "
        "and the nominal one",
        "1 means the same order",
        error=MEAN,
    ),
    "kendall_mean": _Meaning(
        "the mean over scenarios of Kendall's rank correlation (tau-b) between the scenario's "
        "ranking and the nominal one",
        "1 means the same order",
        error=MEAN,
    ),
    "share_nominal_rank_in_p05_p95": _Meaning(
        "the share of units whose nominal rank lies between their own 5th and 95th percentile "
        "ranks across scenarios"
    ),
    # what-if and one-at-a-time
    "change": _Meaning(
        "the single change made, everything else nominal: 'without X' leaves the part X out "
        "(its weight set to 0, its siblings' weights rescaled), 'factor = option' sets one "
        "factor to one of its alternatives"
    ),
    "shift": _Meaning(
        "the rank after the change minus the nominal rank, in places",
        "positive: the unit falls to a worse rank; negative: it rises",
    ),
    "mean_abs_shift": _Meaning(
        "the mean over units of the absolute rank shift the change causes alone, in places "
        "(R_S of Saisana et al. 2005)"
    ),
    "max_abs_shift": _Meaning("the largest absolute rank shift of any unit under the change"),
    "spearman": _Meaning(
        "Spearman's rank correlation between the ranking after the change and the nominal one",
        "1 means the same order; empty where either ranking is all tied (one shared place)",
    ),
    "units": _Meaning(
        "the number of units behind the row: in the one-at-a-time summary those ranked (0 when "
        "the change could not run), in the importance table those where the part is observed"
    ),
    "problem": _Meaning("why the change could not be evaluated (empty when it ran)"),
    # statistical coherence
    "indicator": _Meaning("the indicator's code, as in the index's metadata"),
    "n": _Meaning("the number of units with an observed raw value of the indicator"),
    "missing_share": _Meaning("the share of units whose raw value of the indicator is missing"),
    "zeros": _Meaning("the number of the indicator's observed raw values that are exactly 0"),
    "mean": _Meaning("the mean of the indicator's observed raw values"),
    "sd": _Meaning("the standard deviation of the indicator's observed raw values (n - 1 divisor)"),
    "min": _Meaning("the smallest observed raw value of the indicator"),
    "max": _Meaning("the largest observed raw value of the indicator"),
    "skewness": _Meaning(
        "the skewness of the indicator's raw values, bias-corrected as in Excel and COINr",
        "0 for a symmetric spread, large and positive for a long tail of high values",
    ),
    "kurtosis": _Meaning(
        "the excess kurtosis of the indicator's raw values, bias-corrected",
        "0 for a normal distribution, large for heavy tails",
    ),
    "outlier_flag": _Meaning(
        f"True when |skewness| > {SKEW_THRESHOLD:g} and kurtosis > {KURTOSIS_THRESHOLD:g}, the "
        "JRC rule for an indicator with outliers"
    ),
    "level": _Meaning(
        "the level of the row's part in the index tree, counted from 0 (the indicators) up to "
        "the index"
    ),
    "node_a": _Meaning("the first part of the index in the correlated pair"),
    "node_b": _Meaning(
        "the second part of the pair: a sibling, the parent or the index (see kind)"
    ),
    "kind": _Meaning(
        "which pair is correlated: within (two parts with the same parent), parent (a part and "
        "the aggregate above it) or index (a part and the index)"
    ),
    "r": _Meaning(
        "the correlation across units between the two parts' nominal scores, on the units "
        "observed for both"
    ),
    "flag": _Meaning(
        f"negative (r <= -{WEAK_THRESHOLD:g}: a trade-off), weak (|r| < {WEAK_THRESHOLD:g}, "
        f"either sign) or redundant (r > "
        f"{REDUNDANT_THRESHOLD:g} between siblings, which then double count), undefined (no r: "
        "a constant node, or fewer than three units observed in both); empty otherwise"
    ),
    "method": _Meaning("the correlation used: pearson (linear) or spearman (on ranks)"),
    "node": _Meaning(
        "the part of the index (an indicator or aggregate code) the row is about",
        "in the Cronbach and PCA tables, the aggregate whose parts are analysed",
    ),
    "n_children": _Meaning("the number of the aggregate's direct parts"),
    "alpha_children": _Meaning(
        "Cronbach's alpha of the aggregate's direct parts, on the units where all are observed",
        "closer to 1 when the parts rise and fall together, i.e. measure one thing; empty with "
        "fewer than two parts or two such units, or when the parts' total is the same for every "
        "unit (alpha is then undefined)",
    ),
    "n_indicators": _Meaning("the number of indicators below the aggregate"),
    "alpha_indicators": _Meaning(
        "Cronbach's alpha of all the indicators below the aggregate, on the units where all are "
        "observed",
        "empty as alpha_children is",
    ),
    "component": _Meaning(
        "the number of the principal component (a direction in which the aggregate's parts vary "
        "together), 1 carrying the most variance"
    ),
    "eigenvalue": _Meaning(
        "the variance the component carries, each part standardised to variance 1",
        f"above 1: more than a single part's; {NO_COMPONENTS}",
    ),
    "share": _Meaning(
        "the share of the parts' total standardised variance the component carries", NO_COMPONENTS
    ),
    "cumulative_share": _Meaning(
        "the share carried by this component and all those before it", NO_COMPONENTS
    ),
    "child": _Meaning("the part of the aggregate the loading belongs to"),
    "loading": _Meaning(
        "the part's weight in the component's direction (a unit-length vector)",
        f"signed so that the largest is positive; {NO_COMPONENTS}",
    ),
    # importance against weights
    "parent": _Meaning("the aggregate directly above the part"),
    "eta2": _Meaning(
        "the correlation ratio eta² of the index on this part",
        "the share of the index's variance across units the part explains alone, from a "
        "smoothed (local-linear kernel) regression (Paruolo et al. 2013)",
        UNITS,
    ),
    "bandwidth": _Meaning(
        "the smoothing width of the regression behind eta2, chosen by leave-one-out "
        "cross-validation, on the part's own scale"
    ),
    "nominal_share": _Meaning(
        "the part's nominal weight divided by the sum of its siblings' (the parts with the same "
        "parent, itself included)"
    ),
    "importance_share": _Meaning(
        "the part's importance share: its eta² divided by the sum over its parent's parts",
        "to compare with nominal_share",
        UNITS,
    ),
    "effective_share": _Meaning(
        "the share of the index's variance the part carries through its weight, "
        "w cov(part, index) / Var(index), normalised over its parent's parts",
        "empty where the parent's parts carry none of it between them (their covariances with "
        "the index cancel)",
    ),
    "importance_minus_nominal": _Meaning(
        "importance_share minus nominal_share", "positive: the part matters more than its weight"
    ),
    "importance_over_nominal": _Meaning(
        "importance_share divided by nominal_share",
        "above 1: the part matters more than its weight",
    ),
    "bootstrap": _Meaning(
        "the number of bootstrap resamples (units drawn again with replacement) behind the "
        "table's intervals"
    ),
    "confidence": _Meaning("the confidence level of the table's intervals (_low and _high)"),
    "mean_abs_difference": _Meaning(
        "the mean over the level's parts of |importance_share - nominal_share|"
    ),
    "max_abs_difference": _Meaning(
        "the largest |importance_share - nominal_share| over the level's parts"
    ),
    "furthest": _Meaning(
        "the part of the level whose importance share is furthest from its nominal share"
    ),
    "furthest_importance_share": _Meaning("the importance share of the part named in furthest"),
    "furthest_nominal_share": _Meaning("the nominal weight share of the part named in furthest"),
    # optimal weights
    "nominal_weight": _Meaning(
        "the part's nominal weight divided by the sum of its siblings' (the parts with the same "
        "parent, itself included)"
    ),
    "optimised_weight": _Meaning(
        "the part's weight, again as a share of its siblings', that brings the level's "
        "influence shares closest to their target (least squares) of the weights a local search "
        "from the nominal ones found: other starting weights may reach another local optimum"
    ),
    "target_share": _Meaning(
        "the influence share aimed at: the part's nominal effective weight (the product of the "
        "weight shares on its path to the index) or an equal share of its level"
    ),
    "nominal_influence_share": _Meaning(
        "the part's influence with nominal weights: its Pearson correlation with the index "
        "across units, as a share of the sum over its level"
    ),
    "optimised_influence_share": _Meaning("the part's influence share with the optimised weights"),
    "at_bound": _Meaning(
        f"floor or ceiling when the search stopped at a weight's limit ({BOUND:g} times below "
        "or above its nominal value); empty inside the limits"
    ),
    "target": _Meaning(
        "the influence shares aimed at: weights (the nominal effective weights) or equal"
    ),
    "nominal_distance": _Meaning(
        "the sum of squared differences between the level's influence shares and their target, "
        "with nominal weights"
    ),
    "optimised_distance": _Meaning(
        "the sum of squared differences between the level's influence shares and their target, "
        "with the optimised weights"
    ),
    "converged": _Meaning(
        "whether the optimiser (L-BFGS-B) reports that it converged and the last "
        f"{SETTLED_RESTARTS} restarts from where it stopped each gained less than "
        f"{RESTART_GAIN:g} of the distance"
    ),
    "restarts": _Meaning(
        f"how often the search was restarted from where it stopped (at most {MAX_RESTARTS}): "
        "its memory of the curvature stalls on this objective"
    ),
    "evaluations": _Meaning("the number of index computations the search used"),
    "largest_weight_change": _Meaning(
        "the largest absolute change of a part's weight share from nominal to optimised"
    ),
    "mean_rank_shift": _Meaning(
        "the mean over units of the absolute rank change when the optimised weights replace the "
        "nominal ones"
    ),
    "max_rank_shift": _Meaning(
        "the largest absolute rank change of a unit when the optimised weights replace the "
        "nominal ones"
    ),
    "units_moving": _Meaning(
        "the number of units whose rank changes when the optimised weights replace the nominal ones"
    ),
    # exact rank bounds
    "best_rank": _Meaning(
        "the best rank the unit can reach over every weight vector the config's weight spreads "
        "allow, everything else nominal",
        "exact, not sampled",
    ),
    "worst_rank": _Meaning(
        "the worst rank the unit can reach over every weight vector the config's weight spreads "
        "allow, everything else nominal",
        "exact, not sampled",
    ),
    # Sobol indices
    "factor": _Meaning(
        "the uncertain factor the row is about, as named in the config's [[factors]]"
    ),
    "S1": _Meaning(
        "the first-order Sobol index S1 of the row's factor for the row's output",
        "the share of the output's variance the factor explains alone; a value slightly below 0 "
        "is estimator noise",
        SOBOL,
    ),
    "ST": _Meaning(
        "the total-order Sobol index ST of the row's factor for the row's output",
        "the share of the output's variance the factor takes part in, alone or with other "
        "factors; near 0, the factor could be fixed without changing the output",
        SOBOL,
    ),
    "output_sd": _Meaning(
        "the standard deviation of the output across the design's independent scenarios "
        "(rows A and B)",
        "how much variation there is to explain; for all_ranks, the root mean variance of the "
        "units' ranks",
    ),
    "reliable": _Meaning(
        "whether the output's Sobol indices can rank the factors",
        "False when the output does not vary, is a unit's rank with a standard deviation of at "
        f"most {MIN_RANK_SD:g} places, rests on fewer than {MIN_BASE_SAMPLES} base samples (too "
        f"few for the bootstrap to measure the error), or has an ST interval wider than "
        f"{MAX_INTERVAL:g}",
    ),
    "why_not": _Meaning("the reason the output's indices are not reliable (empty when they are)"),
    "base_samples": _Meaning(
        "the number N of base samples of the Saltelli design behind the Sobol estimates: "
        "N (k + 2) scenarios for k factors, whose rows A and B are 2 N independent scenarios"
    ),
    "sum_S1": _Meaning("the sum of the output's first-order indices S1 over all factors"),
    "widest_ST_interval": _Meaning(
        "the width (upper minus lower end) of the output's widest ST confidence interval over "
        "the factors"
    ),
    "interaction_share": _Meaning(
        "1 minus sum_S1: the share of the output's variance that no factor explains alone, "
        "i.e. that comes from factors acting together",
        "a negative value is estimator noise",
    ),
    **{
        f"interaction_share_{end}": _Meaning(
            f"the {end} end of the bootstrap confidence interval for interaction_share (at the "
            "level of the Sobol indices' intervals)",
            "from the same resamples of the design's base samples, not clipped",
        )
        for end in ("low", "high")
    },
    "max_ST_ranks": _Meaning(
        "the factor's largest ST over the units' ranks, reliable ones only: the most it drives "
        "any one unit's rank"
    ),
    "max_ST_high_ranks": _Meaning(
        "the largest upper end of the factor's ST confidence interval over the units' ranks, "
        "reliable ones only",
        "when small (say below 0.05), the factor matters for no unit's rank",
    ),
    "units_where_top": _Meaning(
        "the number of units for whose rank this factor has the largest ST of all factors, "
        "counting reliable ranks only",
        "by point estimate, so a close second is not told apart",
    ),
}


def _places(k: str) -> str:
    return f"{k} place" if k == "1" else f"{k} places"


def _within(match: re.Match[str], context: _Context) -> _Meaning:
    k = _places(match[1])
    return _probability(
        f"the unit's rank is within {k} of its nominal rank", f"at most {k} better or worse"
    )


def _top(match: re.Match[str], context: _Context) -> _Meaning:
    return _probability(f"the unit ranks in the top {match[1]} (rank {match[1]} or better)")


def _tier(match: re.Match[str], context: _Context) -> _Meaning:
    return _probability(f"the unit falls in tier {match[1]} (1 = top tier)")


def _moved(match: re.Match[str], context: _Context) -> _Meaning:
    return _Meaning(f"the share of units that move more than {_places(match[1])} under the change")


def _share_within(match: re.Match[str], context: _Context) -> _Meaning:
    return _Meaning(
        "the share of all (unit, scenario) pairs in which the unit is within "
        f"{_places(match[1])} of its nominal rank",
        error=SHARE,
    )


def _block(match: re.Match[str], context: _Context) -> _Meaning:
    return _Meaning(
        f"the statistic computed on block {match[1]} alone, one of up to {BLOCKS} disjoint "
        "parts of the design that share no scenario",
        "the spread of the blocks gives standard_error",
    )


def _status(match: re.Match[str], context: _Context) -> _Meaning:
    status = match[1]
    gloss = STATUSES.get(status)
    return _Meaning(
        f"the number of units whose value of the indicator has the data status '{status}'",
        f"{gloss} (from the data file)" if gloss else "as given in the data file",
    )


def _agreement(match: re.Match[str], context: _Context) -> _Meaning:
    measure = "Spearman's rank correlation" if match[1] == "spearman" else "Kendall's tau-b"
    return _Meaning(
        f"{_statistic(match[2], context.interval)} over scenarios of {measure} between the "
        "scenario's ranking and the nominal one",
        "1 means the same order",
        ORDER,
    )


def _shift_quantile(match: re.Match[str], context: _Context) -> _Meaning:
    return _Meaning(
        f"{_statistic(match[1], context.interval)} over scenarios of the mean rank shift R_S",
        R_S,
        ORDER,
    )


def _sobol_output(match: re.Match[str], context: _Context) -> _Meaning:
    order = "first-order" if match[1] == "S1" else "total-order"
    alone = "alone" if match[1] == "S1" else "alone or with other factors"
    output, about = SOBOL_OUTPUTS[match[2]]
    return _Meaning(
        f"the {order} Sobol index {match[1]} of the factor for {output}",
        f"the share of that output's variance the factor explains {alone}; {about}",
        SOBOL,
    )


def _interval_rank(match: re.Match[str], context: _Context) -> _Meaning:
    end = "lower" if match[1] == "low" else "upper"
    return _Meaning(
        f"{_statistic(f'interval_{match[1]}', context.interval)} of the unit's rank across "
        "scenarios",
        f"the {end} end of the central {_percent(context.interval)} rank interval",
        ORDER,
    )


def _quadrant(match: re.Match[str], context: _Context) -> _Meaning:
    return _probability(
        f"the unit has a {match[1]} index score and a {match[2]} GDP per capita",
        "high means above the mean over the units (for GDP, those with a figure), low at or "
        "below it",
    )


FAMILIES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], _Context], _Meaning]], ...] = (
    (re.compile(r"p_within_(\d+)"), _within),
    (re.compile(r"p_top_(\d+)"), _top),
    (re.compile(r"p_tier_(\d+)"), _tier),
    (re.compile(r"share_moved_over_(\d+)"), _moved),
    (re.compile(r"share_within_(\d+)"), _share_within),
    (re.compile(r"block_(\d+)"), _block),
    (re.compile(r"status_(.+)"), _status),
    (re.compile(r"(spearman|kendall)_(median|p05|p95)"), _agreement),
    (re.compile(r"rank_shift_(median|p05|p95)"), _shift_quantile),
    (re.compile(r"(S1|ST)_(rank_shift|ranks)"), _sobol_output),
    (re.compile(r"interval_(low|high)_rank"), _interval_rank),
    (re.compile(r"p_(high|low)_index_(high|low)_gdp"), _quadrant),
)


def _band(column: str, context: _Context) -> _Meaning | None:
    """``<aggregate or total>_<nominal|median|p05|p95|interval_low|interval_high>``."""
    for code in sorted({*context.aggregates, INDEX}, key=len, reverse=True):
        if not column.startswith(f"{code}_"):
            continue
        statistic = column[len(code) + 1 :]
        score = (
            "the unit's index score (total)"
            if code == INDEX
            else f"the unit's score on the aggregate '{code}'"
        )
        if statistic == "nominal":
            return _Meaning(f"{score} under the nominal pipeline")
        if statistic in BAND_STATISTICS:
            note = RESCALED
            if statistic.startswith("interval_"):
                end = "lower" if statistic.endswith("low") else "upper"
                note = f"the {end} end of the central {_percent(context.interval)} band; {note}"
            return _Meaning(
                f"{_statistic(statistic, context.interval)} over scenarios of {score}", note, ORDER
            )
    return None


def _confidence_end(end: str) -> Callable[[_Meaning, _Context], _Meaning | None]:
    """The ``_low`` or ``_high`` end of the confidence interval of the column it extends."""

    def extend(base: _Meaning, context: _Context) -> _Meaning | None:
        if base.error == ORDER:
            return _Meaning(
                f"the {end} end of the {_percent(QUANTILE_CONFIDENCE)} confidence interval for "
                f"{base.what}",
                "distribution-free, from the sorted scenarios; it shows Monte Carlo error, not "
                "the spread across scenarios",
            )
        if base.error == UNITS:
            return _Meaning(
                f"the {end} end of the {_percent(context.confidence)} bootstrap confidence "
                f"interval for {base.what}",
                "from bootstrap resamples of the units",
            )
        if base.error == SOBOL:
            return _Meaning(
                f"the {end} end of the {_percent(context.confidence)} bootstrap confidence "
                f"interval for {base.what}",
                "from bootstrap resamples of the design's base samples, as they fall: an end "
                "below 0 or above 1, where no true index lies, shows the estimator's noise",
            )
        return None

    return extend


#: how the Monte Carlo standard error of each kind of estimate is computed
STANDARD_ERRORS = {
    MEAN: "the standard deviation over scenarios divided by the square root of their number",
    SHARE: "its error from the finite number n of scenarios, about sqrt(p (1 - p) / n) (Agresti "
    "and Coull's, which is not 0 when every scenario agrees)",
}


def _standard_error(base: _Meaning, context: _Context) -> _Meaning | None:
    how = STANDARD_ERRORS.get(base.error)
    if how is None:
        return None
    return _Meaning(f"the Monte Carlo standard error of {base.what}", how)


def _half_width(base: _Meaning, context: _Context) -> _Meaning | None:
    if base.error != SOBOL:
        return None
    return _Meaning(
        f"the half-width of the {_percent(context.confidence)} normal-approximation confidence "
        f"interval for {base.what}",
        "z times the bootstrap standard deviation, as SALib reports it; unlike _low and _high, "
        "symmetric about the estimate",
    )


SUFFIXES: tuple[tuple[str, Callable[[_Meaning, _Context], _Meaning | None]], ...] = (
    ("_se", _standard_error),
    ("_low", _confidence_end("lower")),
    ("_high", _confidence_end("upper")),
    ("_conf", _half_width),
)


def _meaning(column: str, context: _Context) -> _Meaning | None:
    """The meaning of a name the tool writes: exact, a family, a score band, or a suffix that
    extends another such name."""
    if column in EXACT:
        return EXACT[column]
    for pattern, meaning in FAMILIES:
        match = pattern.fullmatch(column)
        if match:
            return meaning(match, context)
    band = _band(column, context)
    if band is not None:
        return band
    for suffix, extend in SUFFIXES:
        if column.endswith(suffix) and len(column) > len(suffix):
            base = _meaning(column[: -len(suffix)], context)
            extended = None if base is None else extend(base, context)
            if extended is not None:
                return extended
    return None


def _attribute(column: str, attributes: frozenset[str]) -> str:
    """A column of the units file (or of the data's text columns)."""
    known = {
        "region": "the unit's region, over which the regions table averages",
        "unit_zh": "the unit's name in Chinese, used by the Chinese labels",
        "gdp_per_capita": "the unit's GDP per capita, which places it in the quadrants table",
    }
    if column in known:
        return known[column]
    base, _, kind = column.rpartition("_")
    if base in attributes:
        told = {
            "source": f"the source of the unit's {base}",
            "status": f"the provenance of the unit's {base} (e.g. official, or derived from "
            "other figures)",
            "trust": f"the trust grade of the source of the unit's {base} (A highest)",
        }
        if kind in told:
            return told[kind]
    return "an attribute of the unit as given with the data, shown for reference"


def describe(
    column: str,
    aggregates: Sequence[str],
    attributes: Sequence[str],
    interval: float,
    confidence: float,
) -> str | None:
    """One plain sentence saying what ``column`` of a run's tables means, or None if unknown.

    ``aggregates``: the index tree's aggregate codes (the index itself is ``total``);
    ``attributes``: the units' attribute columns; ``interval``: the central probability of the
    rank and score bands ([outputs] interval); ``confidence``: the level of the bootstrap
    intervals ([sampling] confidence for Sobol indices, [audit] confidence for importance).
    Quantiles' intervals are always at the level the statistics use.
    """
    return _describe(column, _context(aggregates, attributes, interval, confidence))


def _context(
    aggregates: Sequence[str], attributes: Sequence[str], interval: float, confidence: float
) -> _Context:
    return _Context(
        tuple(aggregates), tuple(a for a in attributes if a != "unit"), interval, confidence
    )


def _describe(column: str, context: _Context) -> str | None:
    """:func:`describe` in a context built once for all of a run's columns (a data file with
    thousands of attribute columns made it quadratic: 75 s for 20,000)."""
    own = _meaning(column, context)
    if column in context.aggregates and column != INDEX:
        named = f"the unit's nominal score on the aggregate '{column}' (a part of the index)"
        where = "the baseline scores"
    elif column in context.attribute_names:
        named = _attribute(column, context.attribute_names)
        where = "the unit attributes"
    else:
        return None if own is None else own.sentence()
    if own is None:
        return _Meaning(named).sentence()
    return _Meaning(f"in {where}, {named}; in the other tables, {own.what}").sentence()


def glossary_table(
    tables: dict[str, pd.DataFrame], interval: float, confidence: float
) -> pd.DataFrame:
    """``column, meaning`` for every column of ``tables`` (and the statistics the ``rank_shift``
    and ``convergence`` tables name in rows), in order of first appearance: the run's own key to
    its files, which the report shows and a reader of the CSVs can open."""
    scores = tables["baseline_scores"].columns
    aggregates = [c for c in scores if c not in ("unit", "year", INDEX, "rank", "tier")]
    units = tables.get("unit_attributes")
    attributes = [] if units is None else list(units.columns)
    names = [column for frame in tables.values() for column in frame.columns]
    names += [
        statistic
        for name in ("rank_shift", "convergence")
        if name in tables
        for statistic in tables[name].statistic
    ]
    context = _context(aggregates, attributes, interval, confidence)
    return pd.DataFrame(
        [(name, _describe(name, context) or "") for name in dict.fromkeys(names)],
        columns=["column", "meaning"],
    )
