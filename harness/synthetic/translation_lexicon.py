"""The English/French lexicon of the synthetic translation grammar: words and their forms.

Data only, plus the small readers that turn the tables into word objects. The grammar that
puts words into sentences (structures, rendering, sampling) is in `translation.py`; a new
noun, adjective or verb is a line here and nothing there.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

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
        if gender == "m" and not plural and self.before_vowel and starts_with_vowel(next_word):
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


def starts_with_vowel(word: str) -> bool:
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
