"""De-duplication: exact (by conversation key) and near (MinHash over word 1-2-grams).

Exact: a row whose key was seen earlier (in recipe order, then row order) is a duplicate;
the first occurrence is kept. Near: Jaccard similarity of the two rows' sets of word
unigrams and bigrams (text under the de-duplication normalisation, punctuation dropped) at
least `threshold`. MinHash LSH (datasketch, run at threshold − 0.15 so that it misses
almost no true pair) proposes candidates; the exact Jaccard of the two sets decides. The pre-training audit's
leakage check uses the same `NearDuplicateIndex`.
"""
from __future__ import annotations

import json
import re
from typing import Iterable, Optional

import numpy as np
import xxhash

from harness.dataprep.normalise import key_text

WORD = re.compile(r"\w+")


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a key appears for the first time."""
    import pandas as pd   # here: the audits of every grading import this module, few of them build data

    if len(keys) == 0:
        return np.zeros(0, dtype=bool)
    halves = np.frombuffer(keys.tobytes(), dtype="<u8").reshape(len(keys), -1)
    frame = pd.DataFrame(halves)
    return ~frame.duplicated(keep="first").to_numpy()


def shingles(messages: Iterable[dict]) -> np.ndarray:
    """Sorted unique 64-bit hashes of the word unigrams and bigrams of every message."""
    feats: set[str] = set()
    for m in messages:
        words = WORD.findall(key_text(m["content"]))
        feats.update(words)
        feats.update(f"{a} {b}" for a, b in zip(words, words[1:]))
    if not feats:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(np.array([_hash64(f) for f in feats], dtype=np.uint64))


def _hash64(text: str) -> int:
    return xxhash.xxh3_64_intdigest(text.encode("utf-8"))


def _low32(value) -> int:
    return int(value) & 0xFFFFFFFF


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class NearDuplicateIndex:
    """Rows added with `add`; `find` returns the earliest added row at least `threshold` similar."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128):
        from datasketch import MinHash, MinHashLSH

        self.threshold, self.num_perm = threshold, num_perm
        # LSH only proposes candidates, and misses some pairs just above its own threshold: it runs
        # lower and weighs false negatives up; the exact Jaccard below makes the decision.
        self._lsh = MinHashLSH(threshold=max(0.05, threshold - 0.15), num_perm=num_perm, weights=(0.1, 0.9))
        self._perms = MinHash(num_perm=num_perm, seed=1, scheme="affine32").permutations    # drawn once, not per row
        self._sets: list[np.ndarray] = []
        self._keys: list[int] = []
        self._sigs = np.zeros((1024, num_perm), dtype=np.uint32)

    def _minhash(self, feats: np.ndarray):
        from datasketch import MinHash

        # The features are already 64-bit hashes: MinHash needs their low 32 bits, not a second hash.
        m = MinHash(num_perm=self.num_perm, seed=1, hashfunc=_low32, permutations=self._perms, scheme="affine32")
        if len(feats):
            m.update_batch(feats)
        return m

    def add(self, key: int, feats: np.ndarray, minhash=None) -> None:
        m = minhash if minhash is not None else self._minhash(feats)
        slot = len(self._sets)
        if slot == len(self._sigs):
            self._sigs = np.concatenate([self._sigs, np.zeros_like(self._sigs)])
        self._sigs[slot] = m.hashvalues
        self._sets.append(feats)
        self._keys.append(key)
        self._lsh.insert(slot, m)

    def find(self, feats: np.ndarray, minhash=None) -> Optional[tuple[int, float]]:
        if len(feats) == 0:
            return None
        m = minhash if minhash is not None else self._minhash(feats)
        cands = np.array(sorted(self._lsh.query(m)), dtype=np.int64)
        if len(cands) == 0:
            return None
        # Templated rows make many candidates: the signatures' agreement (a Jaccard estimate,
        # standard error ≤ 0.5/√num_perm) rules most out in one array operation before the exact test.
        estimate = (self._sigs[cands] == m.hashvalues.astype(np.uint32)).mean(axis=1)
        margin = 3 * 0.5 / np.sqrt(self.num_perm)
        for slot in cands[estimate >= self.threshold - margin]:
            sim = jaccard(feats, self._sets[slot])
            if sim >= self.threshold:
                return self._keys[slot], sim
        return None

    def find_or_add(self, key: int, feats: np.ndarray) -> Optional[tuple[int, float]]:
        """The earlier near-duplicate of this row, else None and the row joins the index."""
        m = self._minhash(feats)
        hit = self.find(feats, m)
        if hit is None:
            self.add(key, feats, m)
        return hit


def near_duplicates(lines: Iterable[str], threshold: float, num_perm: int) -> list[tuple[int, int, float]]:
    """(row, earlier row it nearly repeats, similarity) for each near-duplicate among JSON lines."""
    index = NearDuplicateIndex(threshold, num_perm)
    out = []
    for i, line in enumerate(lines):
        hit = index.find_or_add(i, shingles(json.loads(line)["messages"]))
        if hit is not None:
            out.append((i, hit[0], hit[1]))
    return out
