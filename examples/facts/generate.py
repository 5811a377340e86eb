"""Generate the bundled product-support facts task: questions about invented products -> short answers.

Deterministic (seeded ``random.Random``, pure standard library): running it again writes byte-identical
files. The data are synthetic and made by this script. The task is chosen so that *facts* are the problem,
not form: every answer is a bare value ("$129", "24 months", "30 days", "1.2 kg", an address or phone
line), trivial to format, but only knowable from the knowledge base. It measures the rule of thumb that
finetuning teaches form and retrieval (RAG) supplies facts: a finetuned model may recite what its training
rows said, but it cannot know a fact it was never shown, nor one that changed after training.

Writes, next to this file (or into ``--out``):
- ``knowledge.jsonl``: one document per product, ``id`` (slug), ``title`` (product name), ``text`` (a
  short paragraph stating price, warranty, return window, weight and support contact in varied prose, with
  a sentence that states no asked fact, so that retrieval has some noise);
- ``train.jsonl``: questions about the "seen" products (about two thirds), each asking one fact that is
  "asked" for that product (2 of its 5), in one phrasing; every row has ``slice`` "train";
- ``eval.jsonl``: 8 rows in each of four slices:
  - ``asked``: a fact asked in training, asked again in other words (same answer): recall of trained facts;
  - ``unasked``: a seen product, a fact never asked about it in training: what training did not cover;
  - ``unseen-product``: a product that never occurs in training: pure lookup, only retrieval can know it;
  - ``changed``: a trained fact that changed in the knowledge base after training (the train rows carry
    the old value, the knowledge base only the new one, the row expects the new one): stale weights.

Rows are ``{"prompt", "completion", "doc_id", "slice"}``. A user can replace the three files with their own
in the same format: knowledge ``id``, ``title`` (optional), ``text``; rows ``prompt``, ``completion``,
``doc_id`` (or a list ``doc_ids``) and ``slice``.

Usage: ``python examples/facts/generate.py [--seed N] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

SEED = 0
# Sized for a comparison of four options within ten minutes on a 2-core CPU (prompt tokens dominate it)
N_PRODUCTS, N_UNSEEN, N_PER_SLICE, N_TRAIN_PHRASINGS = 40, 13, 8, 1
ASKED_PER_PRODUCT = 2  # of its five facts, asked in training about each seen product
# A paragraph short enough that a small model reads two in its prompt, and that a comparison on the 2-core
# CPU stays within ten minutes: a CPU pays for every prompt token of every row it generates or trains on.
MAX_WORDS = 60
FACTS = ("price", "warranty", "returns", "weight", "contact")
CHANGEABLE = ("price", "warranty", "returns", "contact")
SLICES = ("asked", "unasked", "unseen-product", "changed")

ONSETS = ["Kor", "Zal", "Quen", "Vosk", "Brel", "Tam", "Nix", "Orl", "Drav", "Pel", "Sov", "Yar", "Fen",
          "Glim"]
CODAS = ["vel", "dix", "ora", "ek", "uno", "ith", "ast", "umi", "arn", "ove"]
MODEL_LETTERS = "ACDEGHKMNPRSTVXZ"
MODEL_NUMBERS = [1, 2, 3, 4, 5, 7, 8, 9, 10, 20, 30, 40, 50, 60, 90, 100, 300, 500]
# category: (lowest price, highest price, lightest kg, heaviest kg)
CATEGORIES = {
    "kettle": (25, 120, 0.8, 1.6),
    "headphones": (39, 349, 0.2, 0.4),
    "router": (49, 299, 0.3, 1.2),
    "blender": (39, 249, 1.5, 4.5),
    "desk lamp": (19, 139, 0.6, 2.0),
    "e-reader": (79, 279, 0.2, 0.3),
    "drill": (49, 229, 1.1, 2.4),
    "toaster": (25, 149, 1.2, 2.8),
    "space heater": (35, 199, 1.5, 5.0),
    "webcam": (29, 199, 0.1, 0.3),
    "coffee grinder": (25, 199, 0.6, 2.5),
    "vacuum cleaner": (89, 499, 2.5, 6.5),
    "hair dryer": (19, 179, 0.4, 0.9),
    "speaker": (29, 249, 0.3, 1.5),
}
WARRANTY_MONTHS = [6, 12, 12, 24, 24, 36]
RETURN_DAYS = [14, 30, 30, 45, 60]
WARRANTY_CHANGE = {6: 12, 12: 24, 24: 36, 36: 60}
RETURN_CHANGE = {14: 30, 30: 60, 45: 90, 60: 90}
MAILBOXES = ["support", "help", "care", "service"]
COLOURS = ["matte black", "pale grey", "forest green", "white", "navy blue", "sand beige", "brick red",
           "slate"]
FINISHES = ["brushed", "soft-touch", "glossy", "textured", "satin"]
ADJECTIVES = ["compact", "sturdy", "minimalist", "rounded", "slim", "classic"]

# Sentence templates: {s} is a subject phrase (capitalised when it opens the sentence), {v} the value.
FACT_SENTENCES = {
    "price": ["{s} sells for {v}.", "{s} is priced at {v} in the US store.", "You can buy {s} for {v}.",
              "{s} retails at {v}."],
    "warranty": ["{s} comes with a warranty of {v}.", "The warranty on {s} runs for {v}.",
                 "{s} is covered for {v} against manufacturing defects.",
                 "Repairs to {s} are free for {v} after purchase."],
    "returns": ["{s} can be returned within {v} of delivery.",
                "If {s} is not right for you, you may send it back within {v}.",
                "The return window for {s} is {v}.",
                "Unused, {s} may be returned for a full refund within {v}."],
    "weight": ["{s} weighs {v}.", "{s} has a weight of {v}.",
               "With a weight of {v}, {s} is easy to move around.",
               "On the scale, {s} comes in at {v}."],
    "contact": ["For help with {s}, contact {v}.", "Support questions about {s} go to {v}.",
                "Owners can reach the support team for {s} at {v}.",
                "If {s} needs service, get in touch via {v}."],
}
INTROS = [
    "The {title} has a {adj} design and comes in {colour}.",
    "Meet the {title}, a {adj} model available in {colour}.",
    "The {title} comes in {colour} with a {finish} finish.",
    "Designed for everyday use, the {title} is sold in {colour}.",
]
NOISE = [
    "Its {finish} surface is easy to wipe clean.",
    "The {cat} ships in recyclable cardboard packaging.",
    "A printed quick-start guide is included in the box.",
    "Many reviewers mention its {adj} look.",
    "The {brand} logo is printed discreetly on the side.",
]
QUESTIONS = {
    "price": ["How much does the {t} cost?", "What is the price of the {t}?", "What does the {t} sell for?",
              "How much is the {t} in US dollars?", "What's the list price of the {t}?",
              "I want to buy the {t}. What will it cost me?"],
    "warranty": ["How long is the warranty on the {t}?", "What warranty does the {t} come with?",
                 "For how many months is the {t} covered by warranty?",
                 "How long does the {t}'s warranty last?",
                 "What is the warranty period of the {t}?",
                 "If my {t} breaks, how long am I covered by the warranty?"],
    "returns": ["How long do I have to return the {t}?", "What is the return window for the {t}?",
                "Within how many days can the {t} be returned?",
                "How many days do I get to send back the {t}?",
                "What's the return period on the {t}?",
                "I changed my mind about the {t}. How long can I still return it?"],
    "weight": ["How much does the {t} weigh?", "What is the weight of the {t}?", "How heavy is the {t}?",
               "What does the {t} weigh?", "What's the {t}'s weight?",
               "Is the {t} heavy? What does it weigh exactly?"],
    "contact": ["How do I contact support for the {t}?", "What is the support contact for the {t}?",
                "Where can I get help with the {t}?", "Who do I reach out to about a problem with my {t}?",
                "What's the customer support line or address for the {t}?",
                "My {t} has a fault. How can I reach support?"],
}


def make_products(rng: random.Random) -> list[dict]:
    """Distinct invented products with their facts as canonical strings (the values at training time)."""
    brands = [a + b for a in ONSETS for b in CODAS]
    rng.shuffle(brands)
    cats = list(CATEGORIES) * (N_PRODUCTS // len(CATEGORIES) + 1)
    rng.shuffle(cats)
    phones = rng.sample(range(100, 200), N_PRODUCTS)
    products = []
    for i in range(N_PRODUCTS):
        brand, cat = brands[i], cats[i]
        lo_p, hi_p, lo_w, hi_w = CATEGORIES[cat]
        model = f"{rng.choice(MODEL_LETTERS)}{rng.choice(MODEL_NUMBERS)}"
        title = f"{brand} {model} {cat}"
        if rng.random() < 0.5:
            contact = f"{rng.choice(MAILBOXES)}@{brand.lower()}.example"
        else:
            contact = f"1-{rng.choice([800, 833, 855, 866, 877, 888])}-555-{phones[i]:04d}"
        facts = {
            "price": f"${rng.randrange(lo_p // 10, hi_p // 10 + 1) * 10 + 9}",
            "warranty": f"{rng.choice(WARRANTY_MONTHS)} months",
            "returns": f"{rng.choice(RETURN_DAYS)} days",
            "weight": f"{rng.uniform(lo_w, hi_w):.1f} kg",
            "contact": contact,
        }
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        products.append({"id": slug, "title": title, "brand": brand, "cat": cat, "facts": facts})
    return products


def changed_value(rng: random.Random, product: dict, fact: str) -> str:
    """A plausible later value of a fact: a price rises, a warranty or return window grows, support moves."""
    old = product["facts"][fact]
    if fact == "price":
        p = int(old[1:])
        return f"${max(p + 10, round(p * rng.uniform(1.1, 1.3) / 10) * 10 + 9)}"
    if fact == "warranty":
        return f"{WARRANTY_CHANGE[int(old.split()[0])]} months"
    if fact == "returns":
        return f"{RETURN_CHANGE[int(old.split()[0])]} days"
    if "@" in old:
        box = rng.choice([b for b in MAILBOXES if not old.startswith(b + "@")])
        return f"{box}@{old.split('@')[1]}"
    return f"1-{rng.choice([800, 833, 855, 866, 877, 888])}-555-{rng.randrange(200, 300):04d}"


def paragraph(rng: random.Random, product: dict) -> str:
    """The product's document: an intro naming it, its five facts and one noise line in random order.

    Drawn again (up to 50 times) while it is longer than MAX_WORDS; the shortest draw is kept otherwise."""
    title, cat, brand = product["title"], product["cat"], product["brand"]
    subjects = ["it", f"the {cat}", f"this {cat}", f"the {brand} {cat}"]
    drafts = []
    for _attempt in range(50):
        words = {"title": title, "cat": cat, "brand": brand, "adj": rng.choice(ADJECTIVES),
                 "colour": rng.choice(COLOURS), "finish": rng.choice(FINISHES)}
        body = []
        for fact in FACTS:
            template, subject = rng.choice(FACT_SENTENCES[fact]), rng.choice(subjects)
            sentence = template.format(s=subject, v=product["facts"][fact])
            body.append(sentence[0].upper() + sentence[1:])
        body += [t.format(**words) for t in rng.sample(NOISE, 1)]
        rng.shuffle(body)
        drafts.append(" ".join([rng.choice(INTROS).format(**words), *body]))
        if len(drafts[-1].split()) <= MAX_WORDS:
            return drafts[-1]
    return min(drafts, key=lambda d: len(d.split()))


def pick_pairs(rng: random.Random, candidates: list[tuple[int, str]], facts: tuple[str, ...]) -> list:
    """N_PER_SLICE (product, fact) pairs, facts taken in turn, each product at most once."""
    order = list(facts)
    rng.shuffle(order)
    chosen: list[tuple[int, str]] = []
    for i in range(N_PER_SLICE):
        used = {p for p, _ in chosen}
        free = [c for c in candidates if c[0] not in used and c not in chosen]
        pool = [c for c in free if c[1] == order[i % len(order)]] or free
        if not pool:
            raise SystemExit("not enough products for an eval slice; raise N_PRODUCTS")
        chosen.append(rng.choice(pool))
    return chosen


def build(seed: int = SEED) -> tuple[dict[str, list[dict]], dict]:
    """All three files' rows, and what check() needs to know: unseen products and the changed values."""
    rng = random.Random(seed)
    products = make_products(rng)
    order = list(range(N_PRODUCTS))
    rng.shuffle(order)
    unseen, seen = order[:N_UNSEEN], order[N_UNSEEN:]
    asked = {p: set(rng.sample(FACTS, ASKED_PER_PRODUCT)) for p in seen}
    trained = [(p, f) for p in seen for f in FACTS if f in asked[p]]
    changed = pick_pairs(rng, [c for c in trained if c[1] in CHANGEABLE], CHANGEABLE)
    asked_pairs = pick_pairs(rng, [c for c in trained if c not in changed], FACTS)
    unasked = pick_pairs(rng, [(p, f) for p in seen for f in FACTS if f not in asked[p]], FACTS)
    unseen_pairs = pick_pairs(rng, [(p, f) for p in unseen for f in FACTS], FACTS)

    old_values = {(p, f): products[p]["facts"][f] for p, f in changed}
    train, train_phrasings = [], {}
    for p, f in trained:
        phrasings = rng.sample(range(len(QUESTIONS[f])), N_TRAIN_PHRASINGS)
        train_phrasings[(p, f)] = set(phrasings)
        for q in phrasings:
            prompt = QUESTIONS[f][q].format(t=products[p]["title"])
            train.append({"prompt": prompt, "completion": products[p]["facts"][f],
                          "doc_id": products[p]["id"], "slice": "train", "_fact": f})
    for p, f in changed:  # the knowledge base moves on after training
        new = changed_value(rng, products[p], f)
        products[p]["facts"][f] = new

    knowledge = [{"id": pr["id"], "title": pr["title"], "text": paragraph(rng, pr)} for pr in products]
    eval_rows = []
    for name, pairs in zip(SLICES, (asked_pairs, unasked, unseen_pairs, changed), strict=True):
        for p, f in pairs:
            used = train_phrasings.get((p, f), set())
            q = rng.choice([i for i in range(len(QUESTIONS[f])) if i not in used])
            eval_rows.append({"prompt": QUESTIONS[f][q].format(t=products[p]["title"]),
                              "completion": products[p]["facts"][f], "doc_id": products[p]["id"],
                              "slice": name, "_fact": f})
    rng.shuffle(train)
    rng.shuffle(eval_rows)
    meta = {
        "unseen": [products[p] for p in unseen],
        "old": {(products[p]["id"], f): v for (p, f), v in old_values.items()},
    }
    return {"knowledge": knowledge, "train": train, "eval": eval_rows}, meta


def check(files: dict[str, list[dict]], meta: dict) -> None:
    """The task's invariants; SystemExit naming the first one broken."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise SystemExit(f"invariant violated: {message}")

    def occurs(value: str, text: str) -> bool:  # as a whole value: "6 months" is not in "36 months"
        return re.search(rf"(?<![\w.$-]){re.escape(value)}(?!\w|\.\w)", text) is not None

    docs = {d["id"]: d["text"] for d in files["knowledge"]}
    need(len(docs) == len(files["knowledge"]), "knowledge ids are not unique")
    need(len({d["title"] for d in files["knowledge"]}) == len(docs), "product titles are not unique")
    train, eval_rows = files["train"], files["eval"]
    train_answer = {(r["doc_id"], r["_fact"]): r["completion"] for r in train}
    for r in train + eval_rows:
        need(r["doc_id"] in docs, f"doc_id {r['doc_id']!r} is not in the knowledge base")
        old = meta["old"].get((r["doc_id"], r["_fact"]))
        text = docs[r["doc_id"]]
        if r["slice"] == "train" and old is not None:
            need(r["completion"] == old and old not in text, f"train row on a changed fact: {r['prompt']!r}")
        else:
            need(occurs(r["completion"], text), f"answer {r['completion']!r} not in document {r['doc_id']!r}")
        if r["slice"] == "changed":
            need(old is not None and old != r["completion"] and old not in text,
                 f"changed row {r['prompt']!r}: old value missing, unchanged or still in the document")
        if r["slice"] == "asked":
            need(train_answer.get((r["doc_id"], r["_fact"])) == r["completion"], f"asked row {r['prompt']!r}")
    for product in meta["unseen"]:
        name = re.compile(rf"\b{re.escape(product['brand'])}\b", re.IGNORECASE)
        need(all(r["doc_id"] != product["id"] and not name.search(r["prompt"]) for r in train),
             f"unseen product {product['title']!r} occurs in train")
    train_prompts = {r["prompt"] for r in train}
    need(not train_prompts & {r["prompt"] for r in eval_rows}, "an eval prompt equals a train prompt")
    for r in eval_rows:
        need(not any(r["completion"] in p for p in train_prompts),
             f"a train prompt contains the eval answer {r['completion']!r}")
    counts = {s: sum(r["slice"] == s for r in eval_rows) for s in SLICES}
    need(all(n == N_PER_SLICE for n in counts.values()) and len(eval_rows) == len(SLICES) * N_PER_SLICE,
         f"eval slice sizes {counts}")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in clean)
    path.write_bytes(text.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    files, meta = build(args.seed)
    check(files, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        write_jsonl(args.out / f"{name}.jsonl", rows)
        print(f"wrote {len(rows)} rows to {args.out / (name + '.jsonl')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
