"""Short free-text descriptions of a person → a JSON object with a fixed schema.

"Marie Dubois, 34, lives in Lyon and works as a nurse." →
{"age":34,"city":"Lyon","job":"nurse","name":"Marie Dubois"}

The fields appear in the text in many orders and phrasings, sometimes next to a sentence
that carries no field (a distractor). `job` is optional: about a quarter of the texts do
not mention one, and then the reference leaves the key out rather than inventing a value,
which is what suites/schemas/person.schema.json allows (name, age and city are required).
The reference is compact JSON with sorted keys, so exact match is well defined.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass

PROMPT = "Extract name, age, city and job as JSON:\n"
SHARE_WITHOUT_JOB = 0.25
SHARE_WITH_DISTRACTOR = 0.3
MAX_TEXT_CHARS = 110  # no distractor past this, so rows fit max_seq_len 192

FIRST_NAMES = {  # name → pronoun
    "Marie": "she", "Julie": "she", "Camille": "she", "Sophie": "she", "Emma": "she",
    "Laura": "she", "Anna": "she", "Clara": "she", "Lucy": "she", "Sarah": "she",
    "Hannah": "she", "Elena": "she", "Nadia": "she", "Ines": "she", "Chloé": "she",
    "Léa": "she", "Grace": "she", "Maya": "she", "Olivia": "she", "Zoe": "she",
    "Pierre": "he", "Thomas": "he", "Lucas": "he", "Hugo": "he", "Louis": "he",
    "James": "he", "David": "he", "Daniel": "he", "Omar": "he", "Karim": "he",
    "Paul": "he", "Mark": "he", "Felix": "he", "Jonas": "he", "Marco": "he",
    "Jérôme": "he", "Ben": "he", "Sam": "he", "Leo": "he", "Victor": "he",
}
LAST_NAMES = [
    "Dubois", "Martin", "Bernard", "Petit", "Moreau", "Laurent", "Garcia", "Rossi",
    "Smith", "Brown", "Taylor", "Wilson", "Clarke", "Evans", "Walker", "Wright",
    "Müller", "Schmidt", "Weber", "Becker", "Novak", "Kowalski", "Costa", "Silva",
    "Haddad", "Mansour", "Nguyen", "Tanaka", "Lefèvre", "Fontaine", "Girard", "Roux",
]
CITIES = [
    "Lyon", "Paris", "Lille", "Nantes", "Bordeaux", "Marseille", "Toulouse", "Nice",
    "London", "Leeds", "Bristol", "Dublin", "Berlin", "Hamburg", "Munich", "Vienna",
    "Zurich", "Geneva", "Brussels", "Amsterdam", "Madrid", "Lisbon", "Rome", "Milan",
    "Prague", "Warsaw", "Oslo", "Porto", "Montreal", "Boston", "Chicago", "Quebec",
]
JOBS = [
    "nurse", "teacher", "baker", "engineer", "architect", "doctor", "pilot", "lawyer",
    "chef", "plumber", "farmer", "journalist", "librarian", "dentist", "electrician",
    "photographer", "accountant", "pharmacist", "mechanic", "designer", "carpenter",
    "translator", "gardener", "musician", "programmer", "police officer", "bus driver",
    "shop assistant", "web developer", "data analyst", "taxi driver", "flight attendant",
]
DISTRACTORS = [
    "{Pron} has two cats.", "{Pron} likes long walks.", "{Pron} plays the piano.",
    "{Pron} speaks three languages.", "{Pron} cycles to work.", "{Pron} loves old films.",
    "{Pron} has a small garden.", "{Pron} runs every morning.",
]

WITH_JOB = [
    "{name}, {age}, lives in {city} and works as {a_job}.",
    "{name} is a {age}-year-old {job} from {city}.",
    "{name} is {a_job} in {city}. {Pron} is {age} years old.",
    "In {city}, {name} ({age}) works as {a_job}.",
    "{name} works as {a_job}. {Pron} is {age} and lives in {city}.",
    "Meet {name}: {a_job} based in {city}, aged {age}.",
    "At {age}, {name} is {a_job} in {city}.",
    "{name} moved to {city} last year. {Pron} is {age} and works as {a_job}.",
    "Name: {name}. Age: {age}. City: {city}. Job: {job}.",
    "Job: {job}. City: {city}. Name: {name}. Age: {age}.",
    "{a_job_cap} from {city}, {name} is {age} years old.",
    "{name} ({age}, {job}) lives in {city}.",
]
WITHOUT_JOB = [
    "{name}, {age}, lives in {city}.",
    "{name} is {age} years old and lives in {city}.",
    "In {city} lives {name}, who is {age}.",
    "Name: {name}. Age: {age}. City: {city}.",
    "{name} turned {age} this year. {Pron} lives in {city}.",
    "{name} ({age}) has lived in {city} for years.",
]


@dataclass(frozen=True)
class PersonRow:
    text: str
    fields: dict          # the structured truth the text was written from

    @property
    def answer(self) -> str:
        return json.dumps(self.fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _with_article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def generate_rows(count: int, seed: int) -> list[PersonRow]:
    rng = random.Random(seed)
    firsts = list(FIRST_NAMES)
    rows = []
    for _ in range(count):
        first = rng.choice(firsts)
        pron = FIRST_NAMES[first]
        fields = {"name": f"{first} {rng.choice(LAST_NAMES)}", "age": rng.randint(18, 79),
                  "city": rng.choice(CITIES)}
        has_job = rng.random() >= SHARE_WITHOUT_JOB
        if has_job:
            fields["job"] = rng.choice(JOBS)
        template = rng.choice(WITH_JOB if has_job else WITHOUT_JOB)
        job = fields.get("job", "")
        a_job = _with_article(job) if job else ""
        text = template.format(name=fields["name"], age=fields["age"], city=fields["city"], job=job,
                               a_job=a_job, a_job_cap=a_job.capitalize(), Pron=pron.capitalize())
        distractor = rng.choice(DISTRACTORS)  # a sentence with no field, before or after
        if rng.random() < SHARE_WITH_DISTRACTOR and len(text) + len(distractor) <= MAX_TEXT_CHARS:
            if rng.random() < 0.5:
                text = f"{text} {distractor.format(Pron=pron.capitalize())}"
            else:
                text = f"{distractor.format(Pron=first)} {text}"
        rows.append(PersonRow(text=text, fields=fields))
    return rows
