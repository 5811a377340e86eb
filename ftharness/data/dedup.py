"""Exact and near-duplicate detection, within one file and between a training and an evaluation file.

Near duplicates are pairs whose shingle sets have a Jaccard similarity of at least ``THRESHOLD``
(Broder 1997, "On the resemblance and containment of documents"). MinHash signatures in an LSH index
(datasketch) find the candidate pairs without comparing every pair; each candidate is then confirmed
with the exact Jaccard of its shingle sets, so a reported pair is never a MinHash estimation error.
Because of that check the index is tuned for recall: it is built for ``threshold - 0.15`` with false
negatives weighted 0.9 (datasketch's ``weights``), which for 0.8 gives 21 bands of 6 rows and a
candidate probability 1 - (1 - s^6)^21 of 0.998 at s = 0.8 (an index built for 0.8 itself finds only 40 %
of the pairs at 0.8).

Shingles are character 5-grams of the lowercased, whitespace-collapsed text: instruction data is short,
and a one-word change moves word n-gram sets much further than character n-gram sets. The 0.8 threshold
is the near-duplicate threshold of Lee et al. 2022 ("Deduplicating Training Data Makes Language Models
Better", arXiv:2107.06499).
"""

from __future__ import annotations

import re
from typing import Any

THRESHOLD = 0.8
NUM_PERM = 128
SHINGLE_CHARS = 5
METHOD = (f"MinHash LSH (datasketch, {NUM_PERM} permutations) over character {SHINGLE_CHARS}-grams of the "
          "lowercased text, confirmed by exact Jaccard")


def normalise(text: str) -> str:
    """Lowercase, whitespace collapsed: what 'exactly the same text' means here."""
    return re.sub(r"\s+", " ", text).strip().lower()


def shingles(text: str, n: int = SHINGLE_CHARS) -> set[str]:
    t = normalise(text)
    if len(t) <= n:
        return {t} if t else set()
    return {t[i:i + n] for i in range(len(t) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _minhash(sh: set[str]) -> Any:
    from datasketch import MinHash

    m = MinHash(num_perm=NUM_PERM, seed=1)
    m.update_batch([s.encode("utf-8") for s in sh])
    return m


def _index(threshold: float) -> Any:
    from datasketch import MinHashLSH

    return MinHashLSH(threshold=max(0.05, threshold - 0.15), num_perm=NUM_PERM, weights=(0.1, 0.9))


def exact_duplicate_groups(texts: list[str]) -> list[list[int]]:
    """Indexes of texts that are the same after normalising, each group in order, groups by first index."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        groups.setdefault(normalise(t), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def near_duplicate_pairs(texts: list[str], threshold: float = THRESHOLD) -> list[tuple[int, int, float]]:
    """(i, j, jaccard) with i < j for texts that are near but not exact duplicates of each other (pairs
    with the first copy of each exact-duplicate group only)."""
    sets = [shingles(t) for t in texts]
    lsh = _index(threshold)
    norms = [normalise(t) for t in texts]
    pairs = []
    first_seen: set[str] = set()
    for i, sh in enumerate(sets):
        if not sh or norms[i] in first_seen:
            continue  # later copies of an exact duplicate would only repeat its first copy's pairs
        first_seen.add(norms[i])
        m = _minhash(sh)
        for j in lsh.query(m):
            if norms[i] != norms[j] and (score := jaccard(sets[i], sets[j])) >= threshold:
                pairs.append((j, i, score))
        lsh.insert(i, m)
    return sorted(pairs)


def cross_pairs(train: list[str], evals: list[str], threshold: float = THRESHOLD) -> dict[str, Any]:
    """Leakage: for each eval text, the training texts equal to it (exact) or near it (Jaccard >= threshold)."""
    train_norm: dict[str, int] = {}
    for i, t in enumerate(train):
        train_norm.setdefault(normalise(t), i)
    train_sets = [shingles(t) for t in train]
    lsh = _index(threshold)
    for i, sh in enumerate(train_sets):
        if sh:
            lsh.insert(i, _minhash(sh))
    exact, near = [], []
    for e, text in enumerate(evals):
        if (i := train_norm.get(normalise(text))) is not None:
            exact.append((e, i, 1.0))
            continue
        sh = shingles(text)
        if not sh:
            continue
        best = max(((jaccard(sh, train_sets[i]), i) for i in lsh.query(_minhash(sh))), default=None)
        if best and best[0] >= threshold:
            near.append((e, best[1], best[0]))
    return {"exact": exact, "near": near}
