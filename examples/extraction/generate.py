"""Generate the bundled structured-extraction task: customer messages -> one JSON object (schema.json).

Deterministic (seeded ``random.Random``, pure standard library): running it again writes byte-identical
files, so the committed data can be checked against the script. The task is chosen so that the base
model's *form* is the problem: the facts are all in the message, but the answer must be bare JSON with
exact keys, an integer quantity, a priority from a fixed list and ISO dates.

Writes, next to this file:
- ``train.jsonl`` (160 rows) and ``eval.jsonl`` (24 rows): ``prompt``, ``completion``, ``template``
  (ticket / email / form / chat) and ``length`` (short / long) for per-slice breakdowns;
- ``preference.jsonl`` (64 rows): ``prompt``, ``chosen`` (the right JSON), ``rejected`` (a plausible
  wrong-format answer: prose prefix, missing field, wrong type, markdown fence, wrong enum spelling) and
  ``rejection`` naming which;
- ``corpus.jsonl`` (48 documents, ``text``): unlabeled support-desk text for continued pretraining, the
  notes and articles a support team writes about its tickets (products, problems, how priorities, quantities
  and dates are read). It names no customer and no order, so it cannot leak an eval answer.

Eval rows use people and order numbers that never occur in train or preference rows, and every eval
message is checked to share under ``MAX_SIMILARITY`` of its word 3-grams (Jaccard) with any other row.

Usage: ``python examples/extraction/generate.py [--out DIR] [--seed N]``
"""

from __future__ import annotations

import argparse
import json
import random
import unicodedata
from pathlib import Path

SEED = 20261107
N_TRAIN, N_EVAL, N_PREFERENCE, N_CORPUS = 160, 24, 64, 48
MAX_SIMILARITY = 0.5
TEMPLATES = ("ticket", "email", "form", "chat")
LENGTHS = ("short", "long")

FIRST = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elif",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kavya",
    "Liam",
    "Mei",
    "Noah",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "María",
    "José",
    "Zoë",
    "Björn",
    "Łukasz",
    "Søren",
    "Chloé",
    "Ngọc",
    "Dvořák",
    "Renée",
    "Jürgen",
    "Aoife",
    "Émile",
    "Siobhán",
    "Nikolai",
    "Amara",
]
LAST = [
    "Smith",
    "Okafor",
    "Rossi",
    "Chen",
    "Yılmaz",
    "Haddad",
    "Kim",
    "Tanaka",
    "García",
    "Weber",
    "Iyer",
    "Murphy",
    "Lin",
    "Cohen",
    "Petrova",
    "Silva",
    "Novak",
    "Moreno",
    "Lee",
    "Rahman",
    "Patel",
    "Dubois",
    "Wang",
    "Mendes",
    "Fernández",
    "Müller",
    "Johansson",
    "Nowak",
    "Brontë",
    "Nguyễn",
    "O'Brien",
    "Kowalski",
    "Schäfer",
    "Andersen",
    "Lefèvre",
    "Costa",
    "Abe",
    "Mbeki",
    "Horvath",
    "Quispe",
]
DOMAINS = ["example.com", "mail.example.org", "example.net", "corp.example", "shop.example.co"]
PRODUCTS = [
    "wireless mouse",
    "USB-C charger",
    "mechanical keyboard",
    "27-inch monitor",
    "laptop stand",
    "noise-cancelling headphones",
    "webcam",
    "desk lamp",
    "ergonomic chair",
    "HDMI cable",
    "portable SSD",
    "phone case",
    "smart watch",
    "coffee grinder",
    "water bottle",
    "yoga mat",
    "bluetooth speaker",
    "printer ink cartridge",
    "office desk",
    "graphics tablet",
    "router",
    "electric kettle",
    "backpack",
    "running shoes",
    "e-reader",
    "microphone",
    "power bank",
    "standing desk mat",
    "label printer",
    "air purifier",
]
NUMBER_WORDS = {
    1: "one",
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
    10: "ten",
    12: "twelve",
}
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
PRIORITY_CUES = {
    "urgent": [
        "This is urgent.",
        "URGENT, please help today.",
        "Please treat this as urgent!",
        "It's an emergency for our team.",
    ],
    "high": [
        "High priority, please.",
        "This is quite important to us.",
        "Please prioritise this one.",
        "Priority is high on our side.",
    ],
    "medium": [
        "Normal priority.",
        "Medium priority is fine.",
        "Sometime this week would be good.",
        "No emergency, but please do not forget it.",
    ],
    "low": ["No rush at all.", "Low priority.", "Whenever convenient.", "Take your time with this."],
}
PRIORITY_FORM = {
    "urgent": ["urgent", "URGENT"],
    "high": ["high", "High"],
    "medium": ["medium", "normal"],
    "low": ["low", "Low"],
}
PROBLEMS = [
    "it arrived damaged",
    "it stopped working after two days",
    "I received the wrong colour",
    "it never arrived",
    "I was charged twice",
    "the box was missing parts",
    "I would like to return it",
    "it is not what the website described",
    "the tracking has not moved in a week",
    "I need an invoice for it",
]
FILLERS = [
    "I have been a customer for years and this has never happened before.",
    "My colleague had a similar problem last month, so I hope it is easy to fix.",
    "I already tried restarting it and checking the manual.",
    "The courier left a note but nobody was home at the time.",
    "Please let me know if you need photos or any other information.",
    "Thanks in advance for looking into it, I appreciate the help.",
    "I tried calling earlier but the line was busy for a long time.",
    "We bought this for our new office, so the timing matters a bit.",
    "The rest of the order was fine, only this item is a problem.",
    "I checked the FAQ on your site but could not find an answer.",
]
TRANSLIT = {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ı": "i", "'": ""}
REJECTIONS = ("prose_prefix", "missing_field", "wrong_type", "code_fence", "wrong_enum")


def ascii_fold(text: str) -> str:
    """A plausible e-mail local part for a name: accents removed, letters kept, lower case."""
    text = "".join(TRANSLIT.get(c, c) for c in text)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c in ".-")).lower()


def draw_record(rng: random.Random, person: tuple[str, str], order_no: int) -> dict:
    """The facts of one request: the reference JSON object (key order as in schema.json)."""
    first, last = person
    style = rng.randrange(3)
    local = {0: f"{first}.{last}", 1: f"{first[0]}{last}", 2: f"{first}{rng.randrange(10, 99)}"}[style]
    quantity = rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6, 10, 12])
    phone = None
    if rng.random() < 0.4:
        phone = rng.choice(
            [
                f"+1 415 555 {rng.randrange(1000, 9999)}",
                f"+44 20 7946 {rng.randrange(1000, 9999)}",
                f"+49 30 {rng.randrange(1000000, 9999999)}",
                f"(020) 7946 {rng.randrange(1000, 9999)}",
            ]
        )
    due = None
    if rng.random() < 0.5:
        due = (2026, rng.randrange(1, 13), rng.randrange(1, 29))
    return {
        "name": f"{first} {last}",
        "email": f"{ascii_fold(local)}@{rng.choice(DOMAINS)}",
        "order_id": f"ORD-{order_no:06d}",
        "product": rng.choice(PRODUCTS),
        "quantity": quantity,
        "priority": rng.choice(["low", "medium", "high", "urgent"]),
        "phone": phone,
        "due_date": None if due is None else f"{due[0]:04d}-{due[1]:02d}-{due[2]:02d}",
    }


def say_quantity(rng: random.Random, q: int, product: str) -> str:
    if q == 1:
        return rng.choice([f"a {product}", f"one {product}", f"1 x {product}"])
    word = NUMBER_WORDS.get(q) if rng.random() < 0.5 else None
    return f"{word or q} x {product}" if rng.random() < 0.3 else f"{word or q} units of the {product}"


def say_date(rng: random.Random, iso: str) -> str:
    y, m, d = (int(p) for p in iso.split("-"))
    return rng.choice([iso, f"{MONTHS[m - 1]} {d}, {y}", f"{d} {MONTHS[m - 1]} {y}"])


def render(rng: random.Random, rec: dict, template: str, length: str) -> str:
    """The customer's message stating the facts of ``rec`` in one of four styles."""
    problem = rng.choice(PROBLEMS)
    qty = say_quantity(rng, rec["quantity"], rec["product"])
    cue = rng.choice(PRIORITY_CUES[rec["priority"]])
    due = f" I need it sorted by {say_date(rng, rec['due_date'])}." if rec["due_date"] else ""
    phone = f" You can reach me on {rec['phone']}." if rec["phone"] else ""
    fillers = rng.sample(FILLERS, 2) if length == "long" else []
    first = rec["name"].split(" ")[0]
    if template == "ticket":
        lines = [
            f"Ticket from {rec['name']} <{rec['email']}>",
            f"Subject: {rec['order_id']} - {rec['product']}",
            f"I ordered {qty} and {problem}. {cue}{due}{phone}",
        ]
        if fillers:
            lines.insert(2, fillers[0])
            lines.append(fillers[1])
        return "\n".join(lines)
    if template == "email":
        greet = rng.choice(["Hello,", "Hi there,", "Dear support team,", "Good morning,"])
        body = f"my order {rec['order_id']} contained {qty}, and {problem}. {cue}{due}{phone}"
        if fillers:
            body = f"{fillers[0]} About {body} {fillers[1]}"
        sign = rng.choice(["Best regards", "Thanks", "Kind regards", "Cheers"])
        return f"{greet}\n{body}\n{sign},\n{rec['name']}\n{rec['email']}"
    if template == "form":
        lines = [
            f"Full name: {rec['name']}",
            f"E-mail: {rec['email']}",
            f"Order number: {rec['order_id']}",
            f"Item: {rec['product']}",
            f"Quantity: {rec['quantity'] if rng.random() < 0.7 else NUMBER_WORDS.get(rec['quantity'], rec['quantity'])}",
            f"Priority: {rng.choice(PRIORITY_FORM[rec['priority']])}",
        ]
        if rec["phone"]:
            lines.append(f"Phone: {rec['phone']}")
        if rec["due_date"]:
            lines.append(f"Needed by: {say_date(rng, rec['due_date'])}")
        message = f"Message: {problem[0].upper() + problem[1:]}."
        if fillers:
            message += " " + " ".join(fillers)
        lines.append(message)
        return "\n".join(lines)
    # chat
    text = (
        f"hi, {first} here ({rec['email']}). {rec['order_id']}: got {qty} but {problem}. "
        f"{cue}{due}{phone} full name is {rec['name']}"
    )
    if fillers:
        text = f"{text}. {fillers[0]} {fillers[1]}"
    return text


def reference(rec: dict) -> str:
    return json.dumps(rec, ensure_ascii=False)


def reject(rng: random.Random, rec: dict, kind: str) -> str:
    """A plausible wrong-format answer of the given kind: right facts, wrong form."""
    if kind == "prose_prefix":
        prefix = rng.choice(
            ["Here is the extracted information:\n", "JSON: ", "Sure! ", "The order details are as follows. "]
        )
        return prefix + reference(rec)
    if kind == "missing_field":
        bad = dict(rec)
        del bad[rng.choice(["order_id", "email", "phone", "due_date", "priority"])]
        return reference(bad)
    if kind == "wrong_type":
        bad = dict(rec)
        bad["quantity"] = rng.choice([str(rec["quantity"]), NUMBER_WORDS.get(rec["quantity"], "several")])
        return reference(bad)
    if kind == "code_fence":
        return "```json\n" + json.dumps(rec, ensure_ascii=False, indent=2) + "\n```"
    bad = dict(rec)
    bad["priority"] = rng.choice(
        [rec["priority"].capitalize(), rec["priority"].upper(), "normal", "critical"]
    )
    if bad["priority"] == rec["priority"]:
        bad["priority"] = "critical"
    return reference(bad)


def shingles(text: str) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i : i + 3]) for i in range(max(1, len(words) - 2))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def build(seed: int = SEED) -> dict[str, list[dict]]:
    """All three files' rows. Eval people and order numbers are drawn first and kept out of the rest."""
    rng = random.Random(seed)
    people = [(f, la) for f in FIRST for la in LAST]
    rng.shuffle(people)
    order_numbers = rng.sample(range(100000, 1000000), N_TRAIN + N_EVAL + N_PREFERENCE + 200)
    eval_people, rest_people = people[: N_EVAL * 4], people[N_EVAL * 4 :]
    eval_first = {p[0] for p in eval_people[:N_EVAL]}
    # Eval people's first names are kept out of training too, so a name is never seen before.
    rest_people = [p for p in rest_people if p[0] not in eval_first]

    def cells(n: int) -> list[tuple[str, str]]:
        grid = [(t, ln) for t in TEMPLATES for ln in LENGTHS]
        return [grid[i % len(grid)] for i in range(n)]

    train, preference, eval_rows = [], [], []
    seen: list[set] = []
    person_iter = iter(rest_people)
    for template, length in cells(N_TRAIN):
        rec = draw_record(rng, next(person_iter), order_numbers.pop())
        prompt = render(rng, rec, template, length)
        seen.append(shingles(prompt))
        train.append({"prompt": prompt, "completion": reference(rec), "template": template, "length": length})
    for i, (template, length) in enumerate(cells(N_PREFERENCE)):
        rec = draw_record(rng, next(person_iter), order_numbers.pop())
        prompt = render(rng, rec, template, length)
        seen.append(shingles(prompt))
        kind = REJECTIONS[i % len(REJECTIONS)]
        preference.append(
            {
                "prompt": prompt,
                "chosen": reference(rec),
                "rejected": reject(rng, rec, kind),
                "rejection": kind,
                "template": template,
                "length": length,
            }
        )
    eval_person_iter = iter(eval_people[:N_EVAL])
    for template, length in cells(N_EVAL):
        person = next(eval_person_iter)
        for _attempt in range(50):
            rec = draw_record(rng, person, order_numbers.pop())
            prompt = render(rng, rec, template, length)
            sh = shingles(prompt)
            if max(jaccard(sh, s) for s in seen) < MAX_SIMILARITY:
                break
        else:
            raise RuntimeError(f"could not draw an eval {template}/{length} message unlike the others")
        seen.append(sh)
        eval_rows.append(
            {"prompt": prompt, "completion": reference(rec), "template": template, "length": length}
        )
    return {"train": train, "eval": eval_rows, "preference": preference}


CORPUS_KINDS = ("triage", "product", "policy", "handover")


def article(noun: str) -> str:
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"


def corpus_document(rng: random.Random, kind: str) -> str:
    """One support-desk document: what the team writes down about its tickets, no customer named."""
    product, other = rng.sample(PRODUCTS, 2)
    problem = rng.choice(PROBLEMS)
    priority = rng.choice(["low", "medium", "high", "urgent"])
    cue = rng.choice(PRIORITY_CUES[priority])
    q = rng.choice([2, 3, 4, 5, 6, 10, 12])
    month, day = rng.randrange(1, 13), rng.randrange(1, 29)
    iso = f"2026-{month:02d}-{day:02d}"
    if kind == "triage":
        return (f"Triage note. A message saying \"{cue}\" is filed at priority {priority}. When a customer writes "
                f"\"{problem}\", the order number (ORD- and six digits) goes on the ticket before anything else. "
                f"A quantity written as \"{NUMBER_WORDS.get(q, q)} units\" is recorded as the number {q}, and a date "
                f"written as \"{day} {MONTHS[month - 1]} 2026\" or \"{MONTHS[month - 1]} {day}, 2026\" is recorded "
                f"as {iso}. A phone number is copied as written; no phone in the message means none on the ticket.")
    if kind == "product":
        return (f"Product article: {product}. The most common message about the {product} says \"{problem}\". "
                f"{rng.choice(FILLERS)} Customers often order it together with {article(other)}, so check whether the "
                f"request covers both items. Multi-unit orders (for example {q} x {product}) are handled as one "
                "ticket with the quantity on it.")
    if kind == "policy":
        days = rng.choice([14, 30, 60])
        return (f"Returns and replacements. A customer may return {article(product)} within {days} days. If a customer writes \"{problem}\", "
                f"the team offers a replacement first and a refund second. Requests marked {priority} are answered "
                f"{'the same day' if priority in ('urgent', 'high') else 'within three working days'}. "
                f"The due date a customer asks for is written in ISO form, such as {iso}.")
    return (f"Shift handover. Open tickets: {q} about the {product}, mostly \"{problem}\"; one about {article(other)} "
            f"due on {iso}. {rng.choice(FILLERS)} Priorities were checked against the wording of each message: "
            f"\"{cue}\" means {priority}. Every ticket has its e-mail address and order number filled in.")


def build_corpus(seed: int = SEED) -> list[dict]:
    """The corpus documents, from a generator of their own (the other files do not move with it)."""
    rng = random.Random(seed + 1)
    return [{"text": corpus_document(rng, CORPUS_KINDS[i % len(CORPUS_KINDS)])} for i in range(N_CORPUS)]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(text.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in {**build(args.seed), "corpus": build_corpus(args.seed)}.items():
        write_jsonl(args.out / f"{name}.jsonl", rows)
        print(f"wrote {len(rows)} rows to {args.out / (name + '.jsonl')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
