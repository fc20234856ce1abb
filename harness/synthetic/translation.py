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
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Optional, Union

GENERATOR_VERSION = "1"  # bump whenever the output for a given seed changes (it keys caches)

MIN_WORDS, MAX_WORDS = 5, 18  # English length; longer or shorter samples are drawn again

# ------------------------------------------------------------------------------ lexicon
# Nouns: "english[/plural] french[/plural] gender tags…", two to a line. Plurals are regular
# unless given. Verbs, prepositions and adjectives select nouns by tag: the kind (person,
# animal, food, drink, thing, container, surface, place, plant), the prepositions it takes
# (in, at, on, under, put-in, water, to), what can be done to it (read, write, open, throw, visit: town),
# mass (milk: no plural, "some" is partitive), kin (may be "my …"), young (never "old").
# "he"/"she" is a person's English pronoun; none where English leaves it open ("teacher").
_NOUNS = """
man/men homme m person he                  woman/women femme f person she
boy garçon m person he young               girl fille f person she young
child/children enfant m person kin young   baby bébé m person kin young
father père m person he kin                mother mère f person she kin
brother frère m person he kin              sister sœur f person she kin
uncle oncle m person he kin                aunt tante f person she kin
king roi m person he                       queen reine f person she
teacher professeur m person kin            doctor médecin m person kin
student étudiant m person                  nurse infirmière f person
farmer fermier m person                    actress actrice f person she
dog chien m animal                         cat chat m animal
bird oiseau/oiseaux m animal               horse cheval/chevaux m animal
cow vache f animal                         mouse/mice souris/souris f animal
rabbit lapin m animal                      fox/foxes renard m animal
duck canard m animal                       sheep/sheep mouton m animal
pig cochon m animal                        goat chèvre f animal
hen poule f animal                         frog grenouille f animal
bear ours/ours m animal                    wolf/wolves loup m animal
elephant éléphant m animal                 donkey âne m animal
owl chouette f animal                      spider araignée f animal
apple pomme f food                         cake gâteau/gâteaux m food
egg œuf m food                             banana banane f food
orange orange f food                       pear poire f food
carrot carotte f food                      tomato/tomatoes tomate f food
strawberry/strawberries fraise f food      lemon citron m food
onion oignon m food                        pie tarte f food
bread pain m food mass                     cheese fromage m food mass
soup soupe f food mass                     rice riz m food mass
milk lait m drink mass                     water eau f drink mass water
juice jus m drink mass                     coffee café m drink mass
tea thé m drink mass                       lemonade limonade f drink mass
book livre m thing read open write         letter lettre f thing read open write
newspaper journal/journaux m thing read    map carte f thing read
ball ballon m thing throw                  stone pierre f thing throw
key clé f thing                            hat chapeau/chapeaux m thing
coat manteau/manteaux m thing              shoe chaussure f thing
pen stylo m thing                          umbrella parapluie m thing
phone téléphone m thing                    watch/watches montre f thing
toy jouet m thing                          knife/knives couteau/couteaux m thing
glass/glasses verre m thing                cup tasse f thing
plate assiette f thing                     bottle bouteille f thing open
computer ordinateur m thing                bicycle vélo m thing
flower fleur f thing plant                 lamp lampe f thing
box/boxes boîte f container open put-in    bag sac m container open put-in
basket panier m container put-in
table table f surface on under             chair chaise f surface on under
bed lit m surface on under                 desk bureau/bureaux m surface on under
sofa canapé m surface on under             bench/benches banc m surface on under
shelf/shelves étagère f surface on         door porte f surface open
window fenêtre f open                      tree arbre m plant under
roof toit m on                             floor sol m on
garden jardin m place in to                kitchen cuisine f place in
house maison f place in                    park parc m place in to
forest forêt f place in                    bedroom chambre f place in
street rue f place in                      village village m place in town
city/cities ville f place in town          river rivière f place water
lake lac m place water                     sea mer f place water
school école f place at                    market marché m place at
station gare f place at                    beach/beaches plage f place at
hospital hôpital/hôpitaux m place at       hotel hôtel m place at
restaurant restaurant m place at           airport aéroport m place at
museum musée m place at                    zoo zoo m place at
bakery/bakeries boulangerie f place at     farm ferme f place at
church/churches église f place at          library/libraries bibliothèque f place at
castle château/châteaux m place at         bridge pont m place on under
"""

# Adjectives: "english french[/fem/masc-pl/fem-pl][+masc-before-vowel] pre|post tags…".
# Missing forms are regular (+e, +s; no extra e after e, no extra s after s/x). Most French
# adjectives follow the noun; "pre" ones precede it, and beau/vieux/nouveau become
# bel/vieil/nouvel before a vowel in the masculine singular.
_ADJECTIVES = """
small petit pre person animal thing container place food surface
big grand pre animal thing container place surface plant
young jeune pre person animal
old vieux/vieille/vieux/vieilles+vieil pre person animal thing place surface plant -young
beautiful beau/belle/beaux/belles+bel pre person animal thing place plant -kin
pretty joli pre animal thing place plant
new nouveau/nouvelle/nouveaux/nouvelles+nouvel pre thing container surface place
good bon/bonne pre food mass
bad mauvais/mauvaise pre food mass
black noir post animal thing container surface
white blanc/blanche post animal thing container surface plant
red rouge post thing container surface food plant
green vert post thing container surface food
blue bleu post thing container surface plant
yellow jaune post thing container surface food plant
grey gris/grise/gris/grises post animal thing container surface
brown brun post animal thing container surface
happy heureux/heureuse/heureux/heureuses post person animal
sad triste post person
tired fatigué post person animal
clever intelligent post person animal
sick malade post person animal
curious curieux/curieuse/curieux/curieuses post person animal
shy timide post person animal
fast rapide post animal
hot chaud post food drink mass
cold froid post food drink mass
fresh frais/fraîche/frais/fraîches post food drink mass
delicious délicieux/délicieuse/délicieux/délicieuses post food mass
clean propre post thing container surface place
dirty sale post thing container surface place animal
heavy lourd post thing container
broken cassé post thing container surface
empty vide post container
famous célèbre post person place
noisy bruyant post place animal
"""


@dataclass(frozen=True, eq=False)   # compared by identity: fast, and one entry is one word
class Noun:
    en: str
    en_pl: str
    fr: str
    fr_pl: str
    gender: str                 # "m" | "f"
    tags: frozenset
    pron: Optional[str]         # English singular pronoun: "he", "she", "it", or None

    @property
    def mass(self) -> bool:     # milk, bread: no plural, no "a"/numbers, "some" is partitive
        return "mass" in self.tags


@dataclass(frozen=True, eq=False)
class Adj:
    en: str
    forms: tuple                # (m sg, f sg, m pl, f pl)
    pre: bool                   # placed before the noun in French
    tags: frozenset             # nouns it may describe…
    unless: frozenset           # …unless they have one of these ("-young": no "old boy")
    before_vowel: Optional[str] = None   # bel, vieil, nouvel

    def fr(self, gender: str, plural: bool, next_word: str) -> str:
        if gender == "m" and not plural and self.before_vowel and _vowel(next_word):
            return self.before_vowel
        return self.forms[(gender == "f") + 2 * plural]


@dataclass(frozen=True, eq=False)
class Verb:
    en: tuple                   # (base, 3rd singular, past), e.g. ("wait for", "waits for", "waited for")
    inf: str
    forms: tuple                # present: je, tu, il, nous, vous, ils
    participle: str
    aux: str                    # "avoir" | "être" (then the participle agrees with the subject)
    subj: frozenset             # noun tags the subject may have
    obj: Optional[frozenset]    # noun tags of the direct object ("-mass": not those); None: intransitive
    dest: Optional[str] = None  # "to"/"at": a destination (go to the market → va au marché), "dative":
    #                             a recipient (give … to the cat → donner … au chat), "put": on/in/under
    dest_required: bool = False
    generic: bool = False       # like/love/hate: French wants a definite object (j'aime les pommes)
    where: Optional[tuple] = None  # the PREPOSITIONS its location may take (swim → in water)


_V = "aeiouyhàâéèêëîïôœù"   # every h-word in the lexicon has a silent h (l'homme, l'hôpital)


def _vowel(word: str) -> bool:
    return word[:1] in _V


def _en_plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"                      # actresses, foxes, benches
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"                # libraries (but donkeys)
    return word + "s"


def _parse_nouns(table: str) -> list[Noun]:
    nouns = []
    for line in table.strip().splitlines():
        for entry in re.split(r"\s{2,}", line.strip()):
            en, fr, gender, *tags = entry.split()
            en, en_pl = (en.split("/") + [_en_plural(en)])[:2]
            fr, fr_pl = (fr.split("/") + [fr if fr[-1] in "sxz" else fr + "s"])[:2]
            pron = "it" if "animal" in tags else next((t for t in tags if t in ("he", "she")), None)
            nouns.append(Noun(en, en_pl, fr, fr_pl, gender, frozenset(tags), pron))
    return nouns


def _parse_adjectives(table: str) -> list[Adj]:
    adjs = []
    for line in table.strip().splitlines():
        en, fr, pos, *tags = line.split()
        fr, _, vowel_form = fr.partition("+")
        given = fr.split("/")
        ms = given[0]
        fs = given[1] if len(given) > 1 else (ms if ms.endswith("e") else ms + "e")
        mp = given[2] if len(given) > 2 else (ms if ms[-1] in "sx" else ms + "s")
        fp = given[3] if len(given) > 3 else fs + "s"
        adjs.append(Adj(en, (ms, fs, mp, fp), pos == "pre", frozenset(t for t in tags if t[0] != "-"),
                        frozenset(t[1:] for t in tags if t[0] == "-"), vowel_form or None))
    return adjs


def V(en: str, fr: str, subj: str, obj: Optional[str] = None, **kw) -> Verb:
    """en: "base 3sg past" ("_" joins particles: wait_for); fr: an infinitive that conjugates
    regularly (-er, -ir like finir, -re like vendre) or "inf je tu il nous vous ils participle"."""
    en_forms = tuple(w.replace("_", " ") for w in en.split())
    words = fr.split()
    inf = words[0]
    if len(words) == 8:
        forms, participle = tuple(words[1:7]), words[7]
    elif inf.endswith("er"):
        stem = inf[:-2]
        nous = stem + ("e" if stem.endswith("g") else "") + "ons"       # mangeons
        nous = nous[:-4] + "çons" if stem.endswith("c") else nous       # lançons
        forms, participle = (stem + "e", stem + "es", stem + "e", nous, stem + "ez", stem + "ent"), stem + "é"
    elif inf.endswith("ir"):
        stem = inf[:-2]
        forms = (stem + "is", stem + "is", stem + "it", stem + "issons", stem + "issez", stem + "issent")
        participle = stem + "i"
    else:
        stem = inf[:-2]
        forms, participle = (stem + "s", stem + "s", stem, stem + "ons", stem + "ez", stem + "ent"), stem + "u"
    return Verb(en_forms, inf, forms, participle, kw.pop("aux", "avoir"), frozenset(subj.split()),
                frozenset(obj.split()) if obj else None, **kw)


ANY = "person animal food drink thing container surface place plant"
VERBS = [
    V("eat eats ate", "manger", "person animal", "food"),
    V("drink drinks drank", "boire bois bois boit buvons buvez boivent bu", "person animal", "drink"),
    V("see sees saw", "voir vois vois voit voyons voyez voient vu", "person animal", ANY),
    V("like likes liked", "aimer", "person", "food drink animal thing place plant", generic=True, where=()),
    V("love loves loved", "adorer", "person", "food drink animal place", generic=True, where=()),
    V("hate hates hated", "détester", "person", "food drink animal", generic=True, where=()),
    V("buy buys bought", "acheter achète achètes achète achetons achetez achètent acheté",
      "person", "food drink thing container"),
    V("find finds found", "trouver", "person animal", "thing container animal"),
    V("take takes took", "prendre prends prends prend prenons prenez prennent pris", "person", "thing container food"),
    V("carry carries carried", "porter", "person", "thing container"),
    V("watch watches watched", "regarder", "person animal", "person animal"),
    V("wash washes washed", "laver", "person", "thing container surface animal -read"),
    V("open opens opened", "ouvrir ouvre ouvres ouvre ouvrons ouvrez ouvrent ouvert", "person", "open"),
    V("close closes closed", "fermer", "person", "open"),
    V("read reads read", "lire lis lis lit lisons lisez lisent lu", "person", "read"),
    V("write writes wrote", "écrire écris écris écrit écrivons écrivez écrivent écrit", "person", "write"),
    V("prepare prepares prepared", "préparer", "person", "food"),
    V("cut cuts cut", "couper", "person", "food -mass"),
    V("paint paints painted", "peindre peins peins peint peignons peignez peignent peint", "person", "surface"),
    V("choose chooses chose", "choisir", "person", "food thing container"),
    V("sell sells sold", "vendre", "person", "food drink thing container animal"),
    V("hear hears heard", "entendre", "person animal", "person animal"),
    V("wait_for waits_for waited_for", "attendre", "person animal", "person animal"),
    V("call calls called", "appeler appelle appelles appelle appelons appelez appellent appelé",
      "person", "person animal"),
    V("follow follows followed", "suivre suis suis suit suivons suivez suivent suivi",
      "person animal", "person animal"),
    V("clean cleans cleaned", "nettoyer nettoie nettoies nettoie nettoyons nettoyez nettoient nettoyé",
      "person", "thing container surface -read"),
    V("bring brings brought", "apporter", "person", "food drink thing container"),
    V("help helps helped", "aider", "person", "person animal"),
    V("feed feeds fed", "nourrir", "person", "animal"),
    V("look_for looks_for looked_for", "chercher", "person animal", "thing container person animal"),
    V("lose loses lost", "perdre", "person", "thing container"),
    V("break breaks broke", "casser", "person animal", "thing container -read"),
    V("throw throws threw", "lancer", "person", "throw"),
    V("listen_to listens_to listened_to", "écouter", "person animal", "person animal"),
    V("visit visits visited", "visiter", "person", "at town", where=("with",)),
    V("meet meets met", "rencontrer", "person", "person"),
    V("draw draws drew", "dessiner", "person", "person animal thing plant"),
    V("give gives gave", "donner", "person", "food drink thing container", dest="dative", dest_required=True),
    V("show shows showed", "montrer", "person", "thing container animal", dest="dative", dest_required=True),
    V("send sends sent", "envoyer envoie envoies envoie envoyons envoyez envoient envoyé", "person",
      "read thing container", dest="dative", dest_required=True),
    V("talk talks talked", "parler", "person", dest="dative"),          # talk to the children → parler aux enfants
    V("put puts put", "mettre mets mets met mettons mettez mettent mis", "person", "thing food",
      dest="put", dest_required=True),
    V("sleep sleeps slept", "dormir dors dors dort dormons dormez dorment dormi", "person animal"),
    V("run runs ran", "courir cours cours court courons courez courent couru", "person animal"),
    V("sing sings sang", "chanter", "person"),
    V("dance dances danced", "danser", "person"),
    V("work works worked", "travailler", "person"),
    V("play plays played", "jouer", "person animal"),
    V("walk walks walked", "marcher", "person animal"),
    V("swim swims swam", "nager", "person animal", where=("in water",)),
    V("laugh laughs laughed", "rire ris ris rit rions riez rient ri", "person",
      where=("in", "with", "under", "near")),                          # not "laughs at the church"
    V("wait waits waited", "attendre", "person animal"),
    V("go goes went", "aller vais vas va allons allez vont allé", "person animal", aux="être",
      dest="to", dest_required=True),
    V("come comes came", "venir viens viens vient venons venez viennent venu", "person animal", aux="être", dest="to",
      where=("with",)),
    V("arrive arrives arrived", "arriver", "person animal", aux="être", dest="at",
      where=("with",)),
    V("leave leaves left", "partir pars pars part partons partez partent parti", "person animal", aux="être",
      where=("with",)),
    V("stay stays stayed", "rester", "person animal", aux="être"),
    V("fall falls fell", "tomber", "person animal", aux="être"),
]

NOUNS = _parse_nouns(_NOUNS)
ADJECTIVES = _parse_adjectives(_ADJECTIVES)
NOUN = {n.en: n for n in NOUNS}
ADJ = {a.en: a for a in ADJECTIVES}
VERB = {v.en[0]: v for v in VERBS}

AVOIR = ("ai", "as", "a", "avons", "avez", "ont")
ETRE = ("suis", "es", "est", "sommes", "êtes", "sont")
ALLER = VERB["go"].forms
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
FR_NUMBERS = [None, "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"]
POSSESSIVES = {"my": ("mon", "ma", "mes"), "your": ("votre", "votre", "vos"), "our": ("notre", "notre", "nos"),
               "their": ("leur", "leur", "leurs"), "his": ("son", "sa", "ses"), "her": ("son", "sa", "ses")}
# English, French, and the noun tags the preposition's object must have.
PREPOSITIONS = {
    "in": ("in", "dans", {"in"}), "at": ("at", "à", {"at"}), "on": ("on", "sur", {"on"}),
    "under": ("under", "sous", {"under"}), "to": ("to", "à", {"at", "to"}), "into": ("in", "dans", {"put-in"}),
    "in water": ("in", "dans", {"water"}),
    "near": ("near", "près de", {"place", "surface", "plant"}),
    "next to": ("next to", "à côté de", {"place", "surface", "plant"}),
    "behind": ("behind", "derrière", {"place", "surface", "plant"}),
    "in front of": ("in front of", "devant", {"place", "surface", "plant"}),
    "with": ("with", "avec", {"person", "animal"}),
    "dative": ("to", "à", {"person", "animal"}),      # give the milk to the cat → donner le lait au chat
}
TIMES = {
    "present": [("every day", "tous les jours"), ("every morning", "tous les matins"), ("today", "aujourd'hui"),
                ("every evening", "tous les soirs"), ("on Sundays", "le dimanche")],
    "past": [("yesterday", "hier"), ("last week", "la semaine dernière"), ("this morning", "ce matin"),
             ("last night", "hier soir"), ("last year", "l'année dernière")],
    "future": [("tomorrow", "demain"), ("next week", "la semaine prochaine"), ("tonight", "ce soir"),
               ("next year", "l'année prochaine"), ("on Monday", "lundi")],
}
ADVERBS = {"always": "toujours", "often": "souvent"}   # present tense only; French puts them after the verb


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
    out = [_ELIDE[t] if t in _ELIDE and i + 1 < len(tokens) and _vowel(tokens[i + 1]) else t
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
