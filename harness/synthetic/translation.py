"""Synthetic English→French sentence pairs from a small but real grammar.

A sentence is first sampled as a structure (clauses made of a subject, a verb, a tense,
a polarity, an object, a prepositional phrase, a time phrase) and then rendered into both
languages by the same code, so the pair is a translation by construction. The French side
carries the phenomena a translator has to learn: gender and number agreement (articles,
adjectives, past participles after être), adjectives after the noun except the few that
go before it (le chat noir, le vieil homme), elision (l'homme, j'aime, n'aime), the
contractions au/aux/du/des, ne … pas / ne … jamais with "pas de" for indefinite objects,
partitives (du lait), "de" for "des" before a plural adjective, possessives (mon/ma/mes,
mon école), the passé composé with avoir or être and the futur proche (va manger).

The sampler only emits constructions whose translation is unique in *both* directions,
because the built-in model is trained on fr→en as well: English "you" is always "vous",
and "one", "his"/"her" (French "un", "son") are left out although `render_*` supports them.

    generate_pairs(n, seed)    n (english, french) pairs; a prefix of generate_pairs(m, seed), m > n
    split_pairs(seed, ...)     disjoint train/val/test lists of distinct pairs
    render_np / render_pp / render_sentence   render a hand-built structure (NP.of, Clause,
                               PRONOUNS, pronoun_for build one; the tests use them)

This file is the grammar; the words it draws from are in `translation_lexicon.py`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Union

from harness.synthetic.translation_lexicon import (  # noqa: F401  (re-exported: tests build structures)
    ADJ, ADJECTIVES, ADVERBS, ALLER, AVOIR, ETRE, FR_NUMBERS, NOUN, NOUNS, NUMBERS, POSSESSIVES,
    PREPOSITIONS, TIMES, VERB, VERBS, Adj, Noun, Verb, starts_with_vowel,
)

GENERATOR_VERSION = "1"  # bump whenever the output for a given seed changes (it keys caches)

MIN_WORDS, MAX_WORDS = 5, 18  # English length; longer or shorter samples are drawn again


# ---------------------------------------------------------------------------- structures
@dataclass(slots=True)   # not frozen: built ~100k times a second, and frozen init is slow
class NP:
    """A noun phrase. det: "the" "a" "some" "this" a possessive ("my"…) or a count 1-10.
    With a possessor the phrase is "the boy's dog" / "le chien du garçon" (det is ignored)."""
    det: Union[str, int]
    noun: Noun
    plural: bool = False
    adj: Optional[Adj] = None
    possessor: Optional["NP"] = None

    @classmethod
    def of(cls, det, noun: str, adj: Optional[str] = None, plural: bool = False, possessor=None) -> "NP":
        """From English words: NP.of("the", "cat", "black") is "the black cat"."""
        n = NOUN[noun]
        plural = plural or (isinstance(det, int) and det > 1) or (det == "some" and not n.mass)
        return cls(det, n, plural, ADJ[adj] if adj else None, possessor)


@dataclass(slots=True)
class Pron:
    en: str
    fr: str
    person: int                 # 0-5: je tu il nous vous ils
    gender: str = "m"


PRONOUNS = {"I": Pron("I", "je", 0), "you": Pron("you", "vous", 4), "he": Pron("he", "il", 2),
            "she": Pron("she", "elle", 2, "f"), "we": Pron("we", "nous", 3), "you (tu)": Pron("you", "tu", 1)}


@dataclass(slots=True)
class Clause:
    subj: Union[NP, Pron]
    verb: Verb
    tense: str = "present"      # "present" | "past" | "future" (futur proche)
    polarity: str = ""          # "" | "not" | "never"
    obj: Optional[NP] = None
    pp: Optional[tuple] = None  # (key of PREPOSITIONS, NP)
    time: Optional[tuple] = None  # (english, french)
    adverb: Optional[str] = None  # "always" | "often"
    conj: Optional[str] = None    # "and" | "but": joins this clause to the previous one
    show_subject: bool = True     # False: "… and drinks the milk" (same subject as before)


# ------------------------------------------------------------------------------ rendering
def _np_tokens(p: NP, negated: bool = False) -> tuple[list, list]:
    """(english tokens, french tokens). negated: direct object of a negative verb, where the
    indefinite articles become "de" (pas de pomme) and English "some" becomes "any"."""
    n, pl = p.noun, p.plural
    noun_en, noun_fr = (n.en_pl, n.fr_pl) if pl else (n.en, n.fr)
    en = ([p.adj.en] if p.adj else []) + [noun_en]
    fr = [noun_fr]
    if p.adj:
        fr = [p.adj.fr(n.gender, pl, noun_fr), noun_fr] if p.adj.pre else [noun_fr, p.adj.fr(n.gender, pl, noun_fr)]
    g = 2 if pl else (n.gender == "f")
    det = p.det
    if p.possessor is not None:
        pen, pfr = _np_tokens(p.possessor)
        owner = p.possessor.noun.en_pl if p.possessor.plural else p.possessor.noun.en
        pen[-1] += "'" if p.possessor.plural and owner.endswith("s") else "'s"   # the boys' / the men's
        return pen + en, [("le", "la", "les")[g]] + fr + ["de"] + pfr
    if det == "the":
        return ["the"] + en, [("le", "la", "les")[g]] + fr
    if det == "this":
        return ["these" if pl else "this"] + en, [("ce", "cette", "ces")[g]] + fr
    if det in POSSESSIVES:
        return [det] + en, [POSSESSIVES[det][g]] + fr
    if isinstance(det, int):
        return [NUMBERS[det]] + en, [("un", "une")[n.gender == "f"] if det == 1 else FR_NUMBERS[det]] + fr
    if det == "a":
        return ["a"] + en, ["de" if negated else ("un", "une")[n.gender == "f"]] + fr
    if det == "some":
        en = ["any" if negated else "some"] + en
        if negated:
            return en, ["de"] + fr                                  # pas de lait, pas de pommes
        if n.mass:
            return en, ["de", ("le", "la")[n.gender == "f"]] + fr   # du lait, de la soupe, de l'eau
        return en, ["de" if p.adj and p.adj.pre else "des"] + fr    # des chats, de petits chats
    raise ValueError(f"unknown determiner {det!r}")


def _pp_tokens(key: str, p: NP) -> tuple[list, list]:
    en_prep, fr_prep, _ = PREPOSITIONS[key]
    en, fr = _np_tokens(p)
    return en_prep.split() + en, fr_prep.split() + fr


_ELIDE = {"le": "l'", "la": "l'", "je": "j'", "ne": "n'", "de": "d'", "ma": "mon", "sa": "son", "ta": "ton",
          "ce": "cet"}
_CONTRACT = {("à", "le"): "au", ("à", "les"): "aux", ("de", "le"): "du", ("de", "les"): "des"}


def finish_fr(tokens: list) -> str:
    """Apply elision (l'homme, j'aime, mon école, cet arbre) and then contraction (au, du,
    aux, des) to a token list, and join it. Elision comes first so that de + l'homme stays."""
    out = [_ELIDE[t] if t in _ELIDE and i + 1 < len(tokens) and starts_with_vowel(tokens[i + 1]) else t
           for i, t in enumerate(tokens)]
    merged = []
    for t in out:
        if merged and (merged[-1], t) in _CONTRACT:
            merged[-1] = _CONTRACT[merged[-1], t]
        else:
            merged.append(t)
    return " ".join(merged).replace("' ", "'").replace(" ,", ",")   # l' homme → l'homme


def finish_en(tokens: list) -> str:
    """"a" → "an" before a vowel letter (the lexicon has no "a unicorn"/"an hour" cases)."""
    return " ".join(["an" if t == "a" and i + 1 < len(tokens) and tokens[i + 1][0] in "aeiou" else t
                     for i, t in enumerate(tokens)]).replace(" ,", ",")


def _subject_person(s: Union[NP, Pron]) -> int:
    return s.person if isinstance(s, Pron) else (5 if s.plural else 2)


_NEG_FR = {"not": "pas", "never": "jamais"}


def _verb_tokens(c: Clause, p: int) -> tuple[list, list]:
    """The verb group. English: -s, do-support, "going to". French: ne … pas/jamais around
    the finite verb (the auxiliary in the passé composé and the futur proche)."""
    v, neg = c.verb, c.polarity
    base, third, past = v.en
    if c.tense == "present":
        if neg == "not":
            en = ["does" if p == 2 else "do", "not", base]
        else:                   # eats, never eats, always eats
            en = [w for w in (neg or c.adverb, third if p == 2 else base) if w]
        finite, rest = v.forms[p], [ADVERBS[c.adverb]] if c.adverb else []   # mange toujours
    elif c.tense == "past":
        en = ["did", "not", base] if neg == "not" else ["never", past] if neg else [past]
        finite, participle = (ETRE if v.aux == "être" else AVOIR)[p], v.participle
        if v.aux == "être":     # elles sont arrivées; only 3rd persons get here, so the gender is known
            gender = c.subj.gender if isinstance(c.subj, Pron) else c.subj.noun.gender
            participle += ("e" if gender == "f" else "") + ("s" if p >= 3 else "")
        rest = [participle]
    elif c.tense == "future":
        be = "am" if p == 0 else "is" if p == 2 else "are"
        en = [be, neg, "going", "to", base] if neg else [be, "going", "to", base]
        finite, rest = ALLER[p], [v.inf]
    else:
        raise ValueError(f"unknown tense {c.tense!r}")
    return en, (["ne", finite, _NEG_FR[neg]] + rest if neg else [finite] + rest)


def _clause_tokens(c: Clause) -> tuple[list, list]:
    p = _subject_person(c.subj)
    en, fr = [], []
    if c.show_subject:
        en, fr = ([c.subj.en], [c.subj.fr]) if isinstance(c.subj, Pron) else _np_tokens(c.subj)
    for e, f in filter(None, (_verb_tokens(c, p),
                              c.obj and _np_tokens(c.obj, negated=bool(c.polarity)),
                              c.pp and _pp_tokens(*c.pp),
                              c.time and ([c.time[0]], [c.time[1]]))):
        en += e
        fr += f
    return en, fr


def render_np(p: NP) -> tuple[str, str]:
    en, fr = _np_tokens(p)
    return finish_en(en), finish_fr(fr)


def render_pp(key: str, p: NP) -> tuple[str, str]:
    en, fr = _pp_tokens(key, p)
    return finish_en(en), finish_fr(fr)


def render_sentence(clauses: list) -> tuple[str, str]:
    """Clauses (the 2nd onwards carry .conj) → capitalised sentences ending with a period."""
    en, fr = [], []
    for c in clauses:
        if c.conj:
            en += ([","] if c.conj == "but" else []) + [c.conj]
            fr += ([","] if c.conj == "but" else []) + [{"and": "et", "but": "mais"}[c.conj]]
        ce, cf = _clause_tokens(c)
        en += ce
        fr += cf
    e, f = finish_en(en), finish_fr(fr)
    return e[0].upper() + e[1:] + ".", f[0].upper() + f[1:] + "."


# ------------------------------------------------------------------------------- sampling
def _with(tags) -> list:
    """Nouns with any of the tags and none of the "-tag" ones."""
    want, avoid = {t for t in tags if t[0] != "-"}, {t[1:] for t in tags if t[0] == "-"}
    return [n for n in NOUNS if n.tags & want and not n.tags & avoid]


_SUBJECTS = {v.en[0]: _with(v.subj) for v in VERBS}
_OBJECTS = {v.en[0]: _with(v.obj) for v in VERBS if v.obj}
_PP_NOUNS = {k: _with(tags) for k, (_, _, tags) in PREPOSITIONS.items()}
# Milk and bread take only the adjectives marked "mass" (hot, fresh…), not "small" or "red".
_ADJS = {n.en: [a for a in ADJECTIVES if ("mass" in a.tags if n.mass else a.tags & n.tags)
                 and not a.unless & n.tags] for n in NOUNS}
# A person or animal owns things and animals; only a person owns a person (the boy's mother).
_OWNERS = {n.en: [o for o in _with({"person", "animal"})
                  if o is not n and ("person" in o.tags or "person" not in n.tags)] for n in NOUNS}
_VERBS_FOR = {}   # subject tags → verbs that subject can do; filled lazily
# Where an action happens, weighted; a verb's .where narrows it (swim → in water).
_LOCATIONS = ["in"] * 4 + ["at"] * 4 + ["on", "under", "near", "next to", "behind", "in front of"] + ["with"] * 3
_OWN = ["my", "your", "our", "their"]


def _pick(rng: random.Random, seq):
    return seq[int(rng.random() * len(seq))]   # rng.choice is several times slower


def _draw_np(rng: random.Random, nouns: list, role: str, avoid=(), generic=False) -> NP:
    """role: "subj", "obj" or "pp" (prepositional objects stay simple: singular places)."""
    n = _pick(rng, nouns)
    while n in avoid:
        n = _pick(rng, nouns)
    r = rng.random()
    if n.mass:        # no plural, no "a"; "some" is the partitive (du lait)
        det = "the" if r < 0.55 or generic or role == "pp" else "some" if r < 0.8 and role == "obj" else \
            "this" if r < 0.88 else _pick(rng, _OWN)
        plural = False
    else:
        if generic or role == "pp":
            det = "the" if r < 0.7 else "this" if r < 0.8 else "a" if r < 0.9 and not generic else _pick(rng, _OWN)
        else:
            det = "the" if r < 0.45 else "a" if r < 0.62 else "some" if r < 0.7 else \
                rng.randint(2, 10) if r < 0.79 else "this" if r < 0.86 else _pick(rng, _OWN)
        if "place" in n.tags and (det == "some" or isinstance(det, int)):
            det = "the"                                 # not "six markets"
        plural = det == "some" or isinstance(det, int) or (
            det != "a" and (role != "pp" or bool(n.tags & {"person", "animal"})) and rng.random() < 0.35)
    # "my mother", "the king's doctor", but not "their man"
    ownable = "person" not in n.tags or "kin" in n.tags
    if det in _OWN and not ownable:
        det = "the"
    adj = _pick(rng, _ADJS[n.en]) if _ADJS[n.en] and rng.random() < 0.4 else None
    possessor = None
    if det == "the" and ownable and role != "pp" and not n.mass and rng.random() < 0.12:
        o = _pick(rng, _OWNERS[n.en])
        possessor = NP("the" if rng.random() < 0.8 else _pick(rng, _OWN), o, rng.random() < 0.3,
                       _pick(rng, _ADJS[o.en]) if rng.random() < 0.15 else None)
    return NP(det, n, plural, adj, possessor)


def _past_is_clear(verb: Verb, subj, polarity: str) -> bool:
    p = _subject_person(subj)
    if verb.aux == "être" and p not in (2, 5):
        return False    # je suis allé or allée? the speaker's gender is unknown
    if verb.en[2] == verb.en[0] and polarity != "not" and p != 2:
        return False    # "they read" is present or past; "she read", "did not read" are clear
    return True


def _draw_clause(rng: random.Random, verb: Verb, subj=None, show_subject=True, tense=None, conj=None) -> Clause:
    if subj is None:
        if "person" in verb.subj and rng.random() < 0.25:
            subj = PRONOUNS[_pick(rng, ["I", "you", "he", "she", "we"])]
        else:
            subj = _draw_np(rng, _SUBJECTS[verb.en[0]], "subj")
    tense = tense or _pick(rng, ["present", "present", "past", "future"])
    r = rng.random()
    polarity = "" if r < 0.68 else "not" if r < 0.9 else "never"
    if tense == "past" and not _past_is_clear(verb, subj, polarity):
        tense = "present"
    adverb = _pick(rng, ["always", "often"]) if tense == "present" and not polarity and rng.random() < 0.12 else None
    subj_noun = () if isinstance(subj, Pron) else (subj.noun,)
    obj = _draw_np(rng, _OBJECTS[verb.en[0]], "obj", subj_noun, verb.generic) if verb.obj else None
    if verb.dest == "put":
        key = _pick(rng, ["on", "under", "into"])
    elif verb.dest and (verb.dest_required or rng.random() < 0.6):
        key = verb.dest
    else:
        where = _LOCATIONS if verb.where is None else verb.where
        key = _pick(rng, where) if where and rng.random() < (0.3 if obj else 0.6) else None
    pp = (key, _draw_np(rng, _PP_NOUNS[key], "pp", subj_noun + ((obj.noun,) if obj else ()))) if key else None
    time = _pick(rng, TIMES[tense]) if rng.random() < 0.2 else None
    return Clause(subj, verb, tense, polarity, obj, pp, time, adverb, conj, show_subject)


def pronoun_for(s: Union[NP, Pron]) -> Optional[Pron]:
    """The pronoun that refers back to a subject: the mouse … it → elle; None if English has none."""
    if isinstance(s, Pron):
        return s
    n = s.noun
    if s.plural:
        return Pron("they", "elles" if n.gender == "f" else "ils", 5, n.gender)
    if n.pron is None:
        return None
    return Pron(n.pron, "elle" if n.gender == "f" else "il", 2, n.gender)


def _draw_sentence(rng: random.Random) -> list:
    first = _draw_clause(rng, _pick(rng, VERBS))
    if rng.random() < 0.55:
        return [first]
    conj = "and" if rng.random() < 0.65 else "but"
    subj_tags = frozenset({"person"}) if isinstance(first.subj, Pron) else first.subj.noun.tags
    if subj_tags not in _VERBS_FOR:
        _VERBS_FOR[subj_tags] = [v for v in VERBS if v.subj & subj_tags]
    verb = _pick(rng, _VERBS_FOR[subj_tags])
    # "I do not run and work" / "never eats and drinks" leave the scope of the negation
    # open in English, so those repeat the subject instead of coordinating verb phrases.
    scope_clear = first.polarity == "" or (first.polarity == "not" and (
        first.tense != "present" or _subject_person(first.subj) == 2))
    r = rng.random()
    same_tense_ok = verb is not first.verb and (first.tense != "past" or _past_is_clear(verb, first.subj, ""))
    if r < 0.35 and scope_clear and same_tense_ok:          # … and drinks the milk
        second = _draw_clause(rng, verb, first.subj, False, first.tense, conj)
    elif r < 0.6 and pronoun_for(first.subj) is not None:       # … and it drinks the milk
        second = _draw_clause(rng, verb, pronoun_for(first.subj), conj=conj)
    else:                                                     # … and the girl drinks the milk
        second = _draw_clause(rng, _pick(rng, VERBS), conj=conj)
    return [first, second]


def generate_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (english, french) sentence pairs, deterministic for a given seed; sentences capitalised
    and ending with a period. Pairs may repeat (rarely); split_pairs gives distinct ones."""
    rng = random.Random(seed)
    pairs = []
    while len(pairs) < n:
        en, fr = render_sentence(_draw_sentence(rng))
        if MIN_WORDS <= en.count(" ") + 1 <= MAX_WORDS:
            pairs.append((en, fr))
    return pairs


def split_pairs(seed: int = 0, n_train: int = 10000, n_val: int = 500, n_test: int = 500) -> dict:
    """Disjoint splits of distinct pairs: no English (or French) sentence is in two splits.
    Test is taken first and val second, so they do not change when n_train changes."""
    want = n_train + n_val + n_test
    count = want + want // 5 + 100
    while True:
        seen_en, seen_fr, unique = set(), set(), []
        for en, fr in generate_pairs(count, seed):
            if en not in seen_en and fr not in seen_fr:
                seen_en.add(en)
                seen_fr.add(fr)
                unique.append((en, fr))
        if len(unique) >= want:
            break
        count *= 2
    return {"test": unique[:n_test], "val": unique[n_test:n_test + n_val],
            "train": unique[n_test + n_val:want]}
