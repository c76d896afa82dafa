"""The level/duration probe (SPEC §4): can order-free statistics of a composite answer ZSTE?

A logistic regression on three statistics of a composite clip — duration (s), RMS, peak, and
nothing else — trained on the training split's composites to tell overlay (``mix``) from
sequential (``seq``) audio, then scored like a model on 3A, 3A-o and 3B of an evaluation set,
with the same items, de-duplication and clustered intervals as :mod:`teminal.zste`. It must sit
at chance (3A 1/3, 3A-o 1/2, 3B 1/3); above chance means the data leak the answer through
level or duration (SPEC §1). Reported as its own row, ``teminal.model = probe:level-duration``.

**Scoring.** The probe's logit ``log p(mix) / p(seq)`` of each composite is shifted by one
constant so that its mean p(mix) over the evaluation set's distinct composites equals the set's
share of mix composites (1/3: each row has a seq, a rev and a mix): a level or duration offset
between the training and the evaluation clips as a whole moves every composite alike and is
no leak; only differences *between* seq and mix composites survive. That gives each audio a
likelihood ratio ``LR = f(stats | mix) / f(stats | seq)``. With a uniform prior over an item's
candidate captions, the posterior of a "while" caption is ∝ LR and of each "before" caption
∝ 1 (the brief's ``p(mix)`` vs ``p(seq)/2``). The item's score is the probability that an
answer drawn from this posterior is correct — its expected credit, not the credit of its
argmax. Why not the argmax: a probe is never exactly uninformative; its LR scatters around 1
by estimation noise, so an argmax answers "while" for about half of all audio whatever it is
and scores ~50 % on 3B (~25 % on 3A) from statistics that carry no information at all. The
posterior's expected credit is exactly chance when LR ≡ 1, moves smoothly with the evidence,
and reaches 100 % on 3B (50 % on 3A) for a perfect leak. 3A-o is exactly 1/2: its two
"before" captions always share the posterior equally.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from teminal.zste import ZsteResult, item_ids, result_from_frames
from teminal.zste_prompts import WHILE, TaskItems, check_keys, zste_items

STATS = ("duration_s", "rms", "peak")
PROBE_TASKS = ("3A", "3A-o", "3B")
_CONSTANT = 1e-5  # a feature whose std is below this share of its mean is constant (float noise)


def composite_stats(keys: Sequence[str], render: Callable[[str], np.ndarray],
                    sample_rate: int) -> np.ndarray:
    """[N, 3] ``STATS`` of the clips named by ``keys`` [N] (each distinct key rendered once):
    duration in seconds, RMS and peak |x| of ``render(key)`` at ``sample_rate``."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    keys = check_keys(keys, len(keys), "keys").tolist()
    rows = {}
    for k in dict.fromkeys(keys):
        x = np.asarray(render(k), dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"render({k!r}): expected non-empty mono samples [S], got {x.shape}")
        rows[k] = (x.size / sample_rate, np.sqrt(np.mean(x**2)), np.max(np.abs(x)))
    return np.array([rows[k] for k in keys], dtype=np.float64).reshape(len(keys), len(STATS))


@dataclass(frozen=True, kw_only=True)
class LevelDurationProbe:
    """A fitted probe: standardization ``mean, scale`` [3], ``weights`` [3] and ``bias``."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def logit(self, stats) -> np.ndarray:
        """log p(mix) / p(seq) [N] of ``stats [N, 3]`` (at the training set's mix share)."""
        z = (_check_stats(stats, "stats") - self.mean) / self.scale  # [N, 3]
        return _matvec(z, self.weights) + self.bias


def fit_probe(stats, is_mix, *, l2: float = 1e-4, max_iter: int = 100) -> LevelDurationProbe:
    """Logistic regression of ``is_mix [N]`` on standardized ``stats [N, 3]`` (SPEC §4),
    fitted by Newton's method with a backtracking line search on the mean log loss plus
    ``l2 / 2 · |w|²`` (the bias is not penalized; ``l2 > 0`` keeps separable data finite).
    A feature constant up to float noise (std < 1e-5 of its mean) gets weight 0. No BLAS or
    LAPACK call (``_matvec``, ``_solve``): the result does not depend on the CPU's OpenBLAS
    kernels (the deterministic CPU mode, ``teminal.determinism``)."""
    x = _check_stats(stats, "stats")
    y = np.asarray(is_mix)
    if y.shape != (len(x),) or y.dtype != bool:
        raise ValueError(f"is_mix: expected bool [N={len(x)}], got {y.dtype} {y.shape}")
    n_mix = int(y.sum())
    if n_mix == 0 or n_mix == len(y):
        raise ValueError("is_mix: the training composites need both seq and mix clips")
    if l2 <= 0:
        raise ValueError(f"l2: expected > 0, got {l2}")
    mean, std = x.mean(0), x.std(0)
    const = std <= _CONSTANT * np.maximum(np.abs(mean), 1e-12)
    scale = np.where(const, 1.0, std)
    z = np.column_stack([np.where(const, 0.0, (x - mean) / scale), np.ones(len(x))])  # [N, 4]
    theta = np.zeros(z.shape[1])
    theta[-1] = np.log(n_mix / (len(y) - n_mix))
    penalty = np.array([l2, l2, l2, 0.0])
    for _ in range(max_iter):
        p = _sigmoid(_matvec(z, theta))
        grad = (z * (p - y)[:, None]).sum(0) / len(y) + penalty * theta  # [4]
        outer = (z * (p * (1 - p))[:, None])[:, :, None] * z[:, None, :]  # (N, 4, 4)
        hess = outer.sum(0) / len(y) + np.diag(penalty)
        step = _solve(hess + 1e-12 * np.eye(len(theta)), grad)
        t, loss = 1.0, _loss(z, y, theta, penalty)
        decrease = float((grad * step).sum())
        while _loss(z, y, theta - t * step, penalty) > loss - 1e-4 * t * decrease and t > 1e-8:
            t /= 2
        theta = theta - t * step
        if np.max(np.abs(t * step)) < 1e-10:
            break
    return LevelDurationProbe(mean=mean, scale=scale, weights=theta[:-1], bias=float(theta[-1]))


def probe_zste(probe: LevelDurationProbe, *, class_names, pairs, seq_keys, rev_keys, mix_keys,
               seq_stats, rev_stats, mix_stats, n_boot: int = 1000, seed: int = 0) -> ZsteResult:
    """3A, 3A-o and 3B of the probe on an evaluation set (module doc): ``pairs [P, 2]``, audio
    keys [P] and ``composite_stats`` [P, 3] of each row's seq, rev and mix audio. Items,
    de-duplication, chance levels and clustered intervals as ``teminal.zste.evaluate``."""
    items = zste_items(class_names, pairs, seq_keys=seq_keys, rev_keys=rev_keys,
                       mix_keys=mix_keys, tasks=PROBE_TASKS, seed=seed)
    logit = {}
    for name, st in (("seq", seq_stats), ("rev", rev_stats), ("mix", mix_stats)):
        s = _check_stats(st, f"{name}_stats")
        if len(s) != len(np.asarray(pairs)):
            raise ValueError(f"{name}_stats: expected [P={len(np.asarray(pairs))}, 3], got {s.shape}")
        logit[name] = probe.logit(s)
    log_lr = _centred_log_lr(logit, {"seq": seq_keys, "rev": rev_keys, "mix": mix_keys})
    texts = np.asarray(items.texts, dtype=object)
    frames = {t: _posterior_frame(it, log_lr, texts) for t, it in items.tasks.items()}
    return result_from_frames(frames, items, n_boot=n_boot, seed=seed)


def _centred_log_lr(logit: dict, keys: dict) -> dict:
    """log LR per source [P] (module doc): the logits shifted by one constant so that the mean
    p(mix) over the set's distinct composites equals its share of mix composites, minus that
    share's log odds."""
    seen = {}  # distinct audio → (logit, is_mix)
    for name in ("seq", "rev", "mix"):
        for k, v in zip(np.asarray(keys[name]).tolist(), logit[name].tolist()):
            seen.setdefault(k, (v, name == "mix"))
    v, is_mix = (np.array(c) for c in zip(*seen.values()))
    share = is_mix.mean()
    lo, hi = -60.0, 60.0  # mean σ(v + δ) increases with δ: bisection
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _sigmoid(v + mid).mean() < share else (lo, mid)
    shift = (lo + hi) / 2 - np.log(share / (1 - share))
    return {name: x + shift for name, x in logit.items()}


def _posterior_frame(it: TaskItems, log_lr: dict, texts: np.ndarray) -> pd.DataFrame:
    """Per-item frame: score = posterior mass of the correct candidates (module doc)."""
    lr = np.array([log_lr[s][r] for s, r in zip(it.source, it.row)])  # [N]
    logits = np.where(it.kind == WHILE, lr[:, None], 0.0)  # [N, C]
    post = np.exp(logits - logits.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    order = np.argsort(-post, axis=1, kind="stable")
    out = item_ids(it)
    out["score"] = (post * it.correct).sum(1)
    best = np.take_along_axis(post, order[:, :2], axis=1)
    out["tied"] = np.abs(best[:, 0] - best[:, 1]) < 1e-9
    out["predicted"] = [" | ".join(f"{texts[c]} ({q:.2f})" for c, q in zip(cand[o], pr[o]))
                        for cand, pr, o in zip(it.candidates, post, order)]
    out["target"] = [" | ".join(texts[cand[ok]]) for cand, ok in zip(it.candidates, it.correct)]
    return out


def _check_stats(stats, name: str) -> np.ndarray:
    x = np.asarray(stats, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(STATS) or not np.isfinite(x).all():
        raise ValueError(f"{name}: expected finite [N, {len(STATS)}] ({', '.join(STATS)}), "
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
