"""English → Chinese sentence pairs, generated offline for the built-in Chinese task.

One clause a sentence, with an optional time phrase and place:

    "Every morning the teacher reads a newspaper in the park."
    → "每天早上老师在公园里看报纸。"

Chinese word order differs from English (time, subject, place, then verb and object), so
the task is more than word-for-word substitution, yet small enough (about 90 distinct
Chinese characters) for the built-in tiny model to learn in two epochs on a CPU. Its
byte-level tokenizer was trained on English and French only: every Chinese character is
three byte tokens, which the model has to learn to emit in order; a decoded output can
hold broken characters (U+FFFD), as a weak real model's can.
"""
from __future__ import annotations

import random

GENERATOR_VERSION = "1"  # bump whenever the output for a given seed changes

SUBJECTS = [
    ("the teacher", "老师"), ("my brother", "我的哥哥"), ("the doctor", "医生"),
    ("the children", "孩子们"), ("our neighbour", "我们的邻居"), ("the old man", "那位老人"),
    ("the student", "学生"), ("my mother", "我的妈妈"), ("the driver", "司机"),
    ("the cook", "厨师"), ("her friend", "她的朋友"), ("the farmer", "农民"),
]
# verb → the objects it takes
VERBS = [
    (("reads", "read"), "看", [("a book", "一本书"), ("the newspaper", "报纸"), ("a letter", "一封信")]),
    (("buys", "buy"), "买", [("some apples", "一些苹果"), ("a new car", "一辆新车"), ("two tickets", "两张票"),
                            ("fresh fish", "新鲜的鱼"), ("green tea", "绿茶")]),
    (("cooks", "cook"), "做", [("the rice", "米饭"), ("fresh fish", "新鲜的鱼"), ("some noodles", "一些面条")]),
    (("writes", "write"), "写", [("a letter", "一封信"), ("a short story", "一个短故事")]),
    (("drinks", "drink"), "喝", [("green tea", "绿茶"), ("hot water", "热水"), ("some milk", "一些牛奶")]),
    (("sells", "sell"), "卖", [("some apples", "一些苹果"), ("fresh fish", "新鲜的鱼"), ("two tickets", "两张票"),
                              ("a new car", "一辆新车")]),
    (("finds", "find"), "找到", [("a small cat", "一只小猫"), ("a book", "一本书"), ("two tickets", "两张票")]),
]
PLACES = [
    ("at home", "在家里"), ("in the park", "在公园里"), ("at school", "在学校"),
    ("in the market", "在市场上"), ("in the kitchen", "在厨房里"), ("at the station", "在车站"), ("", ""),
]
TIMES = [
    ("Every morning", "每天早上"), ("Every day", "每天"), ("On Sundays", "星期天"),
    ("Usually", "通常"), ("In the evening", "晚上"), ("", ""),
]
PLURAL_SUBJECTS = {"the children"}


def _sentence(rng: random.Random) -> tuple[str, str]:
    (subj_en, subj_zh), ((verb_s, verb_p), verb_zh, objects) = rng.choice(SUBJECTS), rng.choice(VERBS)
    obj_en, obj_zh = rng.choice(objects)
    place_en, place_zh = rng.choice(PLACES)
    time_en, time_zh = rng.choice(TIMES)
    negated = rng.random() < 0.15
    verb, neg_zh = (verb_p if subj_en in PLURAL_SUBJECTS else verb_s), ""
    if negated:   # Chinese negates before the place: 不在家里看报纸
        verb = f"{'do' if subj_en in PLURAL_SUBJECTS else 'does'} not {verb_p}"
        neg_zh = "没" if verb_zh == "找到" else "不"
    en = " ".join(w for w in (time_en, subj_en, verb, obj_en, place_en) if w)
    zh = time_zh + subj_zh + neg_zh + place_zh + verb_zh + obj_zh + "。"
    return en[:1].upper() + en[1:] + ".", zh


def generate_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (English, Chinese) pairs, deterministic for a seed (duplicates possible)."""
    rng = random.Random(seed)
    return [_sentence(rng) for _ in range(n)]
