"""The level/duration probe (SPEC §4): can level and length statistics of a composite answer?

A logistic regression on cue statistics of a composite clip only, fitted on the **training**
items of a task and scored by its **decision** on the evaluation items, never re-centred on
them. Its decision uses ``CUE_FEATURES`` by default — SPEC §4's level and length statistics:
duration, RMS, peak, crest factor and the silent share (how much of the clip sounds), the cues
a mixing recipe can leak (a zero-padded overlay is half silent). ``FEATURES`` adds three
statistics of the 20 ms envelope (spread, dynamic range, onsets): they describe what the
composite *is* — two simultaneous sounds make a smoother envelope than the same two in
sequence, two different sounds a wider one than one — so no recipe can hide them; their AUCs
are reported beside the cues' (``feature_aucs``), and a run may put them in the decision
(``features``). Tasks (``PROBE_TASKS``):

- ``A-sd``: stage A's single ``a_i ⊕ a_i'`` vs double ``a_i ⊕ a_j`` (balanced: each unit is a
  row's single and its double; chance 50);
- ``3B`` and ``3W`` (ZSTE's items, SPEC §4): the probe, fitted to tell overlays from sequential
  clips, answers an item with the while caption when it decides "overlay", else with a
  sequential caption (the two tie: statistics without order cannot choose; ties are scored by
  expectation as for any model). Chance 1/3 and 50.

**The decision.** The probe answers "positive" (double / overlay) when its logit exceeds a
threshold fitted on the training items: the one at which it calls positive the training share
of positives (1/2 of stage-A clips, 1/3 of stage-B composites). An uninformative probe then
calls positive that share of evaluation clips whatever they are, so it scores chance on every
task (A-sd 50, 3B 1/3, 3A 1/3, 3W 50); a leaky recipe is caught because the decision follows
the leak. Nothing is fitted on the evaluation items: a level or length shift between training
and evaluation clips moves the decisions too — which is a finding, not noise to remove.

**Not scored on order** (3A-o, 3A-c, and 3A's order half): statistics that do not depend on
the order of events cannot tell ``a_i ⊕ a_j`` from ``a_j ⊕ a_i``, so those numbers would be
fixed by construction (3A-o exactly 1/2), not measured.

**Per-feature AUCs** (``feature_aucs``): for each statistic alone, the area under the ROC
curve of positives vs negatives (0.5 = no information; far from 0.5 either way = a cue),
on the training and on the evaluation items. Reported as its own row,
``teminal.model = probe:level-duration``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from teminal.eval.zste import score_items
from teminal.eval.prompts import zste_items
from teminal.eval.scoring import ZsteResult, result_from_frames
from teminal.eval.tasks import WHILE, check_keys

FEATURES = ("duration_s", "rms", "peak", "crest", "env_cv", "env_range_db", "silent_share",
            "onset_rate")
"""Order-free statistics of one clip (``clip_stats``): level and length, then envelope."""
CUE_FEATURES = ("duration_s", "rms", "peak", "crest", "silent_share")
"""SPEC §4's level and length statistics: what the probe's decision uses unless told."""
PROBE_TASKS = ("A-sd", "3B", "3W")
PROBE_CHANCE = {"A-sd": 0.5}
"""Chance of the probe's own task (3B, 3W: ZSTE's)."""
FRAME_S = 0.02  # envelope frame (s)
SILENT_DB = -50.0  # a frame this far under the clip's loudest frame is silent
ONSET_DB = 6.0  # an onset: a frame this much louder than the one before, above the silence
_CONSTANT = 1e-5  # a feature whose std is below this share of its mean is constant (float noise)


def clip_stats(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """``FEATURES`` [F] of mono samples ``x`` [S]: duration (s), RMS, peak |x|, crest factor
    (peak / RMS), and of the RMS envelope over ``FRAME_S`` frames: its coefficient of
    variation, its 95th / 5th percentile in dB, the share of frames ``SILENT_DB`` under the
    loudest, and onsets (rises of ``ONSET_DB`` between frames) per second."""
    x = np.asarray(x, dtype=np.float64)
    hop = max(1, int(round(FRAME_S * sample_rate)))
    n = len(x) // hop
    env = np.sqrt(np.mean(x[: n * hop].reshape(max(n, 1), -1) ** 2, axis=1)) if n else \
        np.array([np.sqrt(np.mean(x ** 2))])  # (frames,)
    rms, peak = np.sqrt(np.mean(x ** 2)), np.max(np.abs(x))
    db = 20 * np.log10(np.maximum(env, 1e-9) / max(env.max(), 1e-9))  # (frames,) ≤ 0
    loud = db > SILENT_DB
    onsets = np.sum((np.diff(db) > ONSET_DB) & loud[1:])
    p95, p5 = np.percentile(env, [95, 5])
    duration = len(x) / sample_rate
    return np.array([duration, rms, peak, peak / max(rms, 1e-12),
                     env.std() / max(env.mean(), 1e-12),
                     20 * np.log10(max(p95, 1e-9) / max(p5, 1e-9)), 1 - loud.mean(),
                     onsets / duration])


def cue_stats(keys: Sequence[str], render: Callable[[str], np.ndarray],
              sample_rate: int) -> np.ndarray:
    """[N, F] ``clip_stats`` of the clips named by ``keys`` [N] (each distinct key rendered once)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    keys = check_keys(keys, len(keys), "keys").tolist()
    rows = {}
    for k in dict.fromkeys(keys):
        x = np.asarray(render(k), dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"render({k!r}): expected non-empty mono samples [S], got {x.shape}")
        rows[k] = clip_stats(x, sample_rate)
    return np.array([rows[k] for k in keys], dtype=np.float64).reshape(len(keys), len(FEATURES))


@dataclass(frozen=True, kw_only=True)
class LevelDurationProbe:
    """A fitted probe: standardization ``mean, scale`` [F], ``weights`` [F], ``bias``, and the
    decision ``threshold`` on the logit (module doc), all from training items."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float

    def logit(self, stats) -> np.ndarray:
        """log p(positive) / p(negative) [N] of ``stats [N, F]``."""
        z = (_check_stats(stats, "stats") - self.mean) / self.scale  # [N, F]
        return _matvec(z, self.weights) + self.bias

    def decide(self, stats) -> np.ndarray:
        """The decision [N] bool: positive (double / overlay) or not."""
        return self.logit(stats) > self.threshold


def fit_probe(stats, is_pos, *, features: Sequence[str] = CUE_FEATURES, l2: float = 1e-4,
              max_iter: int = 100) -> LevelDurationProbe:
    """Logistic regression of ``is_pos [N]`` on standardized ``stats [N, F]`` (SPEC §4),
    fitted by Newton's method with a backtracking line search on the mean log loss plus
    ``l2 / 2 · |w|²`` (the bias is not penalized; ``l2 > 0`` keeps separable data finite).
    Only the statistics named in ``features`` (a subset of ``FEATURES``) are used; the others,
    and any constant up to float noise, get weight 0. The threshold: the training logits'
    quantile at which the share called positive equals the share of positives. No BLAS or
    LAPACK call (``_matvec``, ``_solve``): the result does not depend on the CPU's OpenBLAS
    kernels (the deterministic CPU mode, ``teminal.determinism``)."""
    unknown = sorted(set(features) - set(FEATURES))
    if unknown or not features:
        raise ValueError(f"features: expected a non-empty subset of {FEATURES}, got {unknown or features}")
    x = _check_stats(stats, "stats")
    y = np.asarray(is_pos)
    if y.shape != (len(x),) or y.dtype != bool:
        raise ValueError(f"is_pos: expected bool [N={len(x)}], got {y.dtype} {y.shape}")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError("is_pos: the training items need both positives and negatives")
    if l2 <= 0:
        raise ValueError(f"l2: expected > 0, got {l2}")
    mean, std = x.mean(0), x.std(0)
    const = (std <= _CONSTANT * np.maximum(np.abs(mean), 1e-12)) | ~np.isin(FEATURES, features)
    scale = np.where(const, 1.0, std)
    z = np.column_stack([np.where(const, 0.0, (x - mean) / scale), np.ones(len(x))])  # [N, F+1]
    theta = np.zeros(z.shape[1])
    theta[-1] = np.log(n_pos / (len(y) - n_pos))
    penalty = np.r_[np.full(x.shape[1], l2), 0.0]
    for _ in range(max_iter):
        p = _sigmoid(_matvec(z, theta))
        grad = (z * (p - y)[:, None]).sum(0) / len(y) + penalty * theta  # [F+1]
        outer = (z * (p * (1 - p))[:, None])[:, :, None] * z[:, None, :]  # (N, F+1, F+1)
        hess = outer.sum(0) / len(y) + np.diag(penalty)
        step = _solve(hess + 1e-12 * np.eye(len(theta)), grad)
        t, loss = 1.0, _loss(z, y, theta, penalty)
        decrease = float((grad * step).sum())
        while _loss(z, y, theta - t * step, penalty) > loss - 1e-4 * t * decrease and t > 1e-8:
            t /= 2
        theta = theta - t * step
        if np.max(np.abs(t * step)) < 1e-10:
            break
    logits = _matvec(z, theta)
    threshold = float(np.quantile(logits, 1 - n_pos / len(y)))
    return LevelDurationProbe(mean=mean, scale=scale, weights=np.where(const, 0.0, theta[:-1]),
                              bias=float(theta[-1]), threshold=threshold)


def auc(score, is_pos) -> float:
    """Area under the ROC curve of ``score [N]`` for ``is_pos [N]`` (Mann–Whitney, ties ½)."""
    s, y = np.asarray(score, dtype=np.float64), np.asarray(is_pos, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    mid = first + (counts + 1) / 2  # average rank of each tie group (1-based)
    ranks[order] = np.repeat(mid, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def feature_aucs(stats, is_pos) -> dict[str, float]:
    """AUC of each statistic alone (``FEATURES`` order). A statistic constant up to float noise
    (``fit_probe``'s rule: a composite re-levelled to the recipe's RMS differs from another only
    by rounding) has AUC 0.5: rounding is no cue."""
    x = _check_stats(stats, "stats")
    const = x.std(0) <= _CONSTANT * np.maximum(np.abs(x.mean(0)), 1e-12)  # [F]
    return {f: 0.5 if const[n] else auc(x[:, n], is_pos) for n, f in enumerate(FEATURES)}


def auc_table(aucs: pd.DataFrame) -> pd.DataFrame:
    """AUC per statistic (rows; ``· decision`` marks those the probe's decision used, where
    ``aucs`` has a ``decision`` column) × task and split (columns), from rows ``task, split,
    feature, auc[, decision]``."""
    aucs = aucs.copy()
    if "decision" in aucs:
        aucs["feature"] = aucs["feature"].where(~aucs["decision"].astype(bool),
                                                aucs["feature"] + " · decision")
    df = aucs.pivot_table(index="feature", columns=["task", "split"], values="auc")
    order = {f: n for n, f in enumerate(FEATURES)}
    df = df.loc[sorted(df.index, key=lambda f: (order.get(f.split(" ")[0], len(order)), f))]
    df.columns = [f"{task} {split}" for task, split in df.columns]
    df.index.name = "statistic"
    return df


def single_double(probe: LevelDurationProbe, *, pairs, single_keys, double_keys, single_stats,
                  double_stats, n_boot: int, seed: int) -> ZsteResult:
    """``A-sd`` on evaluation stage-A rows ``pairs [P, 2]``: each unit, a row's single and its
    double (identical units once), scores the mean of its two decisions' correctness; the
    cluster is the unordered class pair. Interval as ZSTE's."""
    pr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    single_ok = ~probe.decide(single_stats)  # [P] the single called single
    double_ok = probe.decide(double_stats)  # [P]
    keys = pd.Series(check_keys(single_keys, len(pr), "single_keys")) + " + " + \
        pd.Series(check_keys(double_keys, len(pr), "double_keys"))
    k = int(pr.max()) + 1
    frame = pd.DataFrame({"row": np.arange(len(pr)), "audio": "span+seq", "i": pr[:, 0],
                          "j": pr[:, 1], "key": keys, "cluster": pr.min(1) * k + pr.max(1),
                          "phrasing": 0, "score": (single_ok * 1.0 + double_ok) / 2,
                          "tied": False})
    frame["predicted"] = [f"{'single' if s else 'double'} / {'double' if d else 'single'}"
                          for s, d in zip(single_ok, double_ok)]
    frame["target"] = "single / double"
    frame = frame.drop_duplicates("key").reset_index(drop=True)
    return result_from_frames({"A-sd": frame}, None, n_boot=n_boot, seed=seed,
                              extra_chance=PROBE_CHANCE)


def while_tasks(probe: LevelDurationProbe, *, class_names, pairs, seq_keys, rev_keys, mix_keys,
                seq_stats, rev_stats, mix_stats, n_boot: int, seed: int) -> ZsteResult:
    """``3B`` and ``3W`` of the probe on an evaluation set (module doc): ``pairs [P, 2]``, audio
    keys [P] and ``cue_stats`` [P, F] of each row's seq, rev and mix audio. Items,
    de-duplication, chance levels and intervals as ``teminal.eval.zste.evaluate``."""
    items = zste_items(class_names, pairs, seq_keys=seq_keys, rev_keys=rev_keys,
                       mix_keys=mix_keys, tasks=("3B", "3W"), seed=seed)
    decided = {}
    for name, st in (("seq", seq_stats), ("rev", rev_stats), ("mix", mix_stats)):
        s = _check_stats(st, f"{name}_stats")
        if len(s) != len(np.asarray(pairs)):
            raise ValueError(f"{name}_stats: expected [P={len(np.asarray(pairs))}, "
                             f"{len(FEATURES)}], got {s.shape}")
        decided[name] = probe.decide(s)

    def scores(it) -> torch.Tensor:  # while caption +1 if "overlay" decided, else -1; others 0
        mix = np.array([decided[s][r] for s, r in zip(it.source, it.row)])  # [N]
        return torch.as_tensor(np.where(it.kind == WHILE, np.where(mix, 1.0, -1.0)[:, None], 0.0))

    frames = score_items(items, scores)
    return result_from_frames({t: frames[t] for t in ("3B", "3W")}, items, n_boot=n_boot,
                              seed=seed)


def _check_stats(stats, name: str) -> np.ndarray:
    x = np.asarray(stats, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or not np.isfinite(x).all():
        raise ValueError(f"{name}: expected finite [N, {len(FEATURES)}] ({', '.join(FEATURES)}), "
                         f"got shape {x.shape}")
    return x


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * v))


def _matvec(z: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``z [N, F] @ v [F]`` as elementwise products and a sum (no BLAS kernel)."""
    return (z * v[None, :]).sum(1)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a [F, F] x = b [F]`` by Gaussian elimination with partial pivoting (F is 4 here), in
    plain arithmetic so the result does not depend on the CPU's LAPACK / BLAS kernels."""
    m = np.column_stack([np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)])  # (F, F+1)
    n = len(m)
    for k in range(n):
        pivot = k + int(np.argmax(np.abs(m[k:, k])))
        if m[pivot, k] == 0:
            raise np.linalg.LinAlgError("singular matrix")
        m[[k, pivot]] = m[[pivot, k]]
        m[k + 1:] -= m[k + 1:, k:k + 1] / m[k, k] * m[k]
    x = np.zeros(n)
    for k in range(n - 1, -1, -1):
        x[k] = (m[k, n] - (m[k, k + 1:n] * x[k + 1:]).sum()) / m[k, k]
    return x


def _loss(z: np.ndarray, y: np.ndarray, theta: np.ndarray, penalty: np.ndarray) -> float:
    v = _matvec(z, theta)
    return float(np.mean(np.logaddexp(0, v) - y * v) + 0.5 * (penalty * theta**2).sum())
