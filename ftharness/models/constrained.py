"""JSON-Schema-constrained decoding for the batched engine (``GenerationSettings.json_schema``).

The contract:
- Every output of a constrained row is one compact JSON document (one line, ``", "`` and ``": "`` as
  separators, keys in the schema's order) that validates against the schema, bar the keywords
  :func:`unenforced_keywords` lists for it, and bar rows cut by ``max_new_tokens`` or a stop string
  (their ``finish_reason`` says so).
- A row ends as soon as its JSON closes: the grammar then allows only the model's EOS ids (the engine's
  own, :func:`ftharness.models.generation.eos_token_ids`), so the next token is EOS.
- The processor follows each row of a left-padded batch from its last token only; rows that finished
  (EOS, or a stop string: transformers then feeds them the pad token) are left alone, so the pad token is
  never fed to a grammar. One processor serves one ``model.generate`` call (the engine makes one per
  batch); compiled grammars are cached per (tokenizer, vocabulary size, EOS ids, schema).
- Unconstrained generation (``json_schema`` None) never imports this module.

Why xgrammar: measured by ``benchmarks/constrained.py`` (zero-shot on the 24 bundled extraction rows,
embedded SmolLM2-135M-Instruct, greedy, batch 16, max_new_tokens 104, one torch thread, 2-core CPU that
other training and profiling jobs kept busy; each library's matchers run inside this
engine, the same row logic for all):

| library | tokens/s | mask time | compile | schema-valid | field accuracy | cut by length |
|---|---|---|---|---|---|---|
| none (unconstrained engine) | 33.2 | - | - | 0/24 | 0.010 | 17/24 |
| xgrammar 0.2.9 | 40.8 | 0.5 s | 0.6 s | 16/24 | 0.422 | 8/24 |
| llguidance 1.9.1 | 38.5 | 1.0 s | 1.4 s | 16/24 | 0.417 | 8/24 |
| outlines-core 0.2.14 (outlines 1.3.3) | 39.9 | 0.8 s | 1.6 s | 14/24 | 0.422 | 10/24 |

(An earlier run of the same code gave the same validity, 16/16/14 of 24; during its xgrammar turn this
session's own tests shared the CPU too and xgrammar measured 15.1 tokens/s with masks of 1.3 s, the others
35.5 and 40.7: the swing is the model's forward pass, not the library.) Masks cost under 2 % of the wall
time for every library, so speed does not separate them; validity and accuracy do: xgrammar and
llguidance tie on validity, xgrammar is a hair ahead on field accuracy, and outlines-core (the schema
turned into one regex, given an optional single space as its whitespace) loses two rows. xgrammar also
masks with its own C++ kernel on CPU (the torch kernels that llguidance and outlines-core ship are
``torch.compile`` functions, which need a C compiler at run time on CPU), and probes of it rejected
instances breaking ``pattern``, 14 ``format`` values, length and numeric bounds; llguidance, by its
documented default (``lenient`` off), refuses a schema with a keyword it does not implement, where a
report should rather say what is not enforced. xgrammar's wheel declares triton (CUDA's kernel
compiler) as a dependency on Linux x86-64 although nothing on CPU uses it (see pyproject.toml).

Every row the 104-token budget did not cut was valid with all three libraries. The cut rows are the
model's own doing: greedy decoding of the 135M model loops inside free strings ("electric_kettles_
electric_kettles_...", the unconstrained argmax at every step), and the references alone take 67-99
tokens, so no masking reaches 24/24 at this budget; nothing here shortens or closes a row early.

What xgrammar does beyond the schema (stricter, never invalid): ``pattern`` is matched whole, as if
anchored (JSON Schema searches); keys come in the schema's order; keys and array items the schema does
not name are not generated unless ``additionalProperties`` says which (xgrammar's ``strict_mode``);
numbers under bounds have no exponent; strings under length bounds have no escapes.
What it does not enforce: :func:`unenforced_keywords`, checked against the installed version by
tests/test_constrained.py.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ftharness.errors import BadInput, EnvironmentProblem

LIBRARY = "xgrammar"
SEPARATORS = (", ", ": ")  # json.dumps's defaults: one line, as the references are written
WHITESPACE = "compact: one line, no indentation, ', ' between items and ': ' after keys"

# Formats xgrammar 0.2.9 enforces (probed: a malformed instance is refused); any other value is ignored.
SUPPORTED_FORMATS = frozenset({
    "email", "date", "time", "date-time", "duration", "uri", "uri-reference", "uri-template", "uuid",
    "ipv4", "ipv6", "hostname", "json-pointer", "relative-json-pointer",
})
# Keywords xgrammar ignores wherever they appear, with what that lets through.
IGNORED = {
    "uniqueItems": "repeated items can be generated",
    "contains": "an array without a matching item can be generated",
    "minContains": "ignored with contains",
    "maxContains": "ignored with contains",
    "dependentRequired": "keys it makes required can be left out",
    "dependentSchemas": "the dependent schema is not applied",
    "dependencies": "the dependent keys or schema are not applied",
    "not": "instances of the negated schema can be generated",
    "if": "the conditional schemas are not applied",
    "then": "not applied (if/then/else)",
    "else": "not applied (if/then/else)",
    "$dynamicRef": "not resolved: any JSON can be generated there",
    "$recursiveRef": "not resolved: any JSON can be generated there",
}
_VALUE_KEYWORDS = ("minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
                   "exclusiveMaximum", "multipleOf")
# Keywords whose values are subschemas (mappings of them, or lists of them).
_SUB_ONE = ("additionalProperties", "items", "additionalItems", "propertyNames", "unevaluatedProperties",
            "unevaluatedItems")
_SUB_MAP = ("properties", "patternProperties", "$defs", "definitions")
_SUB_LIST = ("allOf", "anyOf", "oneOf", "prefixItems", "items")


def unenforced(schema: Any) -> list[dict[str, str]]:
    """Where decoding cannot enforce ``schema``: ``{"path", "keyword", "why"}`` for each place (JSON
    Pointer of the subschema), in document order. An output may break these and still be produced."""
    return [{"path": path or "/", "keyword": kw, "why": why} for path, kw, why in _walk(schema, "")]


def unenforced_keywords(schema: Any) -> list[str]:
    """The keywords of ``schema`` that xgrammar does not enforce while decoding, each once, in document
    order (``[]``: constrained outputs validate, bar rows cut by the length limit). See :func:`unenforced`
    for where and why."""
    seen: list[str] = []
    for _, kw, _ in _walk(schema, ""):
        if kw not in seen:
            seen.append(kw)
    return seen


def describe(schema: Any) -> dict[str, Any]:
    """What constrained decoding does with ``schema``, for results and reports (JSON-ready)."""
    return {
        "library": LIBRARY,
        "version": library_version(),
        "whitespace": WHITESPACE,
        "unenforced_keywords": unenforced_keywords(schema),
        "unenforced": unenforced(schema),
        "token_budget": token_budget(schema),
    }


# A free string's character can take up to 6 bytes in the output: a JSON escape ``\\uXXXX``.
BYTES_PER_CHAR = 6


def token_budget(schema: Any) -> int | None:
    """The most new tokens a constrained row can need to close its JSON, EOS included; None when the
    schema does not bound the length of a valid document.

    Every token of a byte-level vocabulary decodes to at least one byte, and special tokens are masked
    out, so the UTF-8 length of the longest compact serialization the schema allows bounds the tokens; a
    row given this many tokens always closes its JSON. The bound is loose (a row rarely needs a tenth of
    it) and costs nothing unless a row loops inside a string up to its length bound. What bounds a value:
    ``maxLength`` or a bounded ``pattern`` on strings (of the two xgrammar applies the pattern, see
    :func:`unenforced`), ``minimum`` and ``maximum`` on integers, ``enum``/``const``, ``maxItems`` on
    arrays, ``additionalProperties: false`` on objects; numbers and free-form values are unbounded.
    """
    size = _max_bytes(schema)
    return None if size is None else size + 1


def _max_bytes(s: Any) -> int | None:
    if s is True or not isinstance(s, dict):
        return None
    if "enum" in s or "const" in s:
        values = s["enum"] if "enum" in s else [s["const"]]
        return max(len(_compact(v).encode()) for v in values) if values else None
    if "anyOf" in s or "oneOf" in s:
        return _max_of([_max_bytes(b) for b in s.get("anyOf", s.get("oneOf")) or []])
    if any(k in s for k in ("$ref", "allOf", "not", "if")):
        return None
    types = s.get("type")
    if isinstance(types, list):
        return _max_of([_max_bytes({**s, "type": t}) for t in types])
    if types == "null":
        return 4
    if types == "boolean":
        return 5
    if types == "integer":
        lo, hi = s.get("minimum"), s.get("maximum")
        return None if lo is None or hi is None else max(len(str(int(lo))), len(str(int(hi))))
    if types == "string":
        chars = _pattern_width(s["pattern"]) if "pattern" in s else s.get("maxLength")
        return None if chars is None else 2 + BYTES_PER_CHAR * int(chars)
    if types == "array":
        n, item = s.get("maxItems"), _max_bytes(s.get("items", {}))
        return None if n is None or item is None else 2 + n * item + max(0, n - 1) * len(SEPARATORS[0])
    if types == "object":
        props = s.get("properties") or {}
        if s.get("additionalProperties", True) is not False or s.get("patternProperties"):
            return None
        sizes = [_max_bytes(v) for v in props.values()]
        if any(x is None for x in sizes):
            return None
        keys = sum(len(_compact(k).encode()) + len(SEPARATORS[1]) for k in props)
        return 2 + keys + sum(sizes) + max(0, len(props) - 1) * len(SEPARATORS[0])
    return None


def _max_of(sizes: list[int | None]) -> int | None:
    return None if not sizes or any(x is None for x in sizes) else max(sizes)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=SEPARATORS, ensure_ascii=False)


def _pattern_width(pattern: str) -> int | None:
    """The longest match of ``pattern`` in characters, from Python's own regex parser (JSON Schema
    patterns are ECMA-262; the common subset parses alike); None if unbounded or not parsed."""
    try:
        from re import _parser as parser  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as parser
    try:
        hi = parser.parse(pattern).getwidth()[1]
    except Exception:  # an ECMA-only construct: treat as unbounded
        return None
    return None if hi >= int(parser.MAXREPEAT) else int(hi)


def library_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version(LIBRARY)
    except metadata.PackageNotFoundError:
        return None


def check_schema(schema: Any, *, field: str = "json_schema") -> None:
    """BadInput unless ``schema`` is a valid JSON Schema object (for the draft its ``$schema`` names)."""
    from ftharness.typed import check_json_schema

    check_json_schema(schema, field=field)


# -- compiling ---------------------------------------------------------------------------------------

_lock = threading.Lock()
# tokenizer -> {(vocab_size, stop ids): (GrammarCompiler, {schema text: CompiledGrammar})}
_compilers: weakref.WeakKeyDictionary[Any, dict[tuple[int, tuple[int, ...]], tuple[Any, dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)


def _xgrammar() -> Any:
    try:
        import xgrammar
    except ImportError as e:
        raise EnvironmentProblem(
            f"schema-constrained decoding needs xgrammar ({e}); install it with: pip install 'ftharness[eval]'"
        ) from None
    return xgrammar


def compile_schema(tokenizer: Any, schema: dict[str, Any], *, vocab_size: int, stop_token_ids: Sequence[int]) -> Any:
    """The xgrammar ``CompiledGrammar`` of ``schema`` (compact whitespace, strict mode) for this tokenizer,
    a vocabulary of ``vocab_size`` ids (the model's logits width) and these end ids; cached."""
    xgr = _xgrammar()
    check_schema(schema)
    text = json.dumps(schema, ensure_ascii=False)  # key order kept: it is the order keys are generated in
    stops = tuple(int(i) for i in stop_token_ids)
    if not stops:
        raise BadInput("the model has no EOS id, so a constrained row could never end", field="model")
    with _lock:
        try:
            per_tokenizer = _compilers.setdefault(tokenizer, {})
        except TypeError:  # not weakly referenceable: no cache
            per_tokenizer = {}
        entry = per_tokenizer.get((vocab_size, stops))
        if entry is None:
            info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=list(stops))
            entry = per_tokenizer[(vocab_size, stops)] = (xgr.GrammarCompiler(info), {})
        compiler, grammars = entry
        if text not in grammars:
            try:
                grammars[text] = compiler.compile_json_schema(
                    text, any_whitespace=False, separators=SEPARATORS, strict_mode=True
                )
            except (RuntimeError, ValueError) as e:
                raise BadInput(f"{LIBRARY} cannot compile this schema: {str(e).strip().splitlines()[-1]}",
                               field="json_schema") from None
        return grammars[text]


def vocab_size(lm: Any) -> int:
    """The width of the model's logits: the output embedding's rows, else the config's vocab_size."""
    head = lm.model.get_output_embeddings() if hasattr(lm.model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    size = getattr(getattr(lm.model, "config", None), "vocab_size", None)
    return int(size) if size else len(lm.tokenizer)


def json_schema_processor(lm: Any, schema: dict[str, Any], *, eos_ids: Sequence[int] | None = None,
                          stopped: Mapping[int, int] | None = None) -> Any:
    """A fresh transformers ``LogitsProcessor`` constraining every row of one ``generate`` call to
    ``schema``. ``eos_ids``: the ids that end a row (default: the engine's); ``stopped``: rows another
    criterion ended (row -> new tokens), e.g. the engine's stop strings, which it then leaves alone."""
    from ftharness.models.generation import eos_token_ids

    eos = list(eos_ids) if eos_ids is not None else eos_token_ids(lm)
    size = vocab_size(lm)
    compiled = compile_schema(lm.tokenizer, schema, vocab_size=size, stop_token_ids=eos)
    return _processor_class()(compiled, eos, size, stopped)


_processor_cls: Any = None


def _processor_class() -> Any:
    """The LogitsProcessor subclass, built on first use so importing this module stays light."""
    global _processor_cls
    if _processor_cls is not None:
        return _processor_cls
    from transformers import LogitsProcessor

    xgr = _xgrammar()

    class JsonSchemaLogitsProcessor(LogitsProcessor):
        """Masks each live row's logits to the tokens its grammar allows next."""

        def __init__(self, compiled: Any, eos: list[int], vocab: int, stopped: Mapping[int, int] | None) -> None:
            self.compiled, self.eos, self.vocab = compiled, eos, vocab
            self.stopped = stopped if stopped is not None else {}
            self.matchers: list[Any] = []
            self.done: list[bool] = []
            self.refused: dict[int, int] = {}  # row -> step: a token its grammar refused (a row ended otherwise)
            self.width = 0
            self.bitmask: Any = None
            self.backend = "cpu"

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            batch, width = input_ids.shape
            if not self.matchers:  # first step: the prompt, nothing generated yet
                self.matchers = [xgr.GrammarMatcher(self.compiled, override_stop_tokens=self.eos) for _ in range(batch)]
                self.done = [False] * batch
                self.bitmask = xgr.allocate_token_bitmask(batch, self.vocab)
                self.backend = _mask_backend(scores.device.type)
            elif batch != len(self.matchers) or width != self.width + 1:
                raise RuntimeError("a JsonSchemaLogitsProcessor follows one generate() call one token at a time; "
                                   "make a new one for each call")
            else:
                for row, token in enumerate(input_ids[:, -1].tolist()):
                    if self.done[row]:
                        continue
                    if row in self.stopped:  # ended by a stop string: from now on transformers pads it
                        self.done[row] = True
                    elif not self.matchers[row].accept_token(token):
                        self.done[row] = True
                        self.refused[row] = width
                    elif self.matchers[row].is_terminated():  # it accepted an EOS id: the row is over
                        self.done[row] = True
            self.width = width
            live = [row for row in range(batch) if not self.done[row]]
            if not live:
                return scores
            xgr.reset_token_bitmask(self.bitmask)
            for row in live:
                # Once the JSON is complete the grammar allows only the EOS ids: the row ends at once.
                self.matchers[row].fill_next_token_bitmask(self.bitmask, row)
            if scores.shape[-1] > self.vocab:  # ids beyond the tokenizer's: never generated
                scores[live, self.vocab:] = float("-inf")
            xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device), vocab_size=self.vocab,
                                            indices=live, backend=self.backend)
            return scores

    _processor_cls = JsonSchemaLogitsProcessor
    return _processor_cls


def _mask_backend(device_type: str) -> str:
    """xgrammar's masking kernel for a device: its C++ one on CPU, Triton on CUDA when installed, else the
    plain torch one."""
    if device_type == "cpu":
        return "cpu"
    if device_type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "torch_native"
        return "triton"
    return "torch_native"


# -- what the library leaves out ---------------------------------------------------------------------


def _walk(schema: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """(JSON Pointer, keyword, why) for each unenforced keyword, depth first in document order."""
    if not isinstance(schema, dict):
        return
    yield from _here(schema, path)
    for key, value in schema.items():
        if key in IGNORED:  # nothing under a keyword the library ignores is applied either
            continue
        where = f"{path}/{_escape(key)}"
        if key in _SUB_MAP and isinstance(value, dict):
            for name, sub in value.items():
                yield from _walk(sub, f"{where}/{_escape(str(name))}")
        elif key in _SUB_LIST and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from _walk(sub, f"{where}/{i}")
        elif key in _SUB_ONE and isinstance(value, dict):
            yield from _walk(value, where)


def _here(s: dict[str, Any], path: str) -> Iterator[tuple[str, str, str]]:
    for key in s:
        if key in IGNORED:
            yield path, key, IGNORED[key]
    if "enum" in s or "const" in s:
        # The listed values are generated as written; constraints beside them are not checked.
        which = "enum" if "enum" in s else "const"
        for key in _VALUE_KEYWORDS:
            if key in s:
                yield path, key, f"not applied beside {which}: its values are generated as listed"
        return
    # Of format, pattern and length bounds on one string, xgrammar applies one: a format it knows, else the
    # pattern, else the bounds.
    if "format" in s and s["format"] in SUPPORTED_FORMATS:
        for key in ("pattern", "minLength", "maxLength"):
            if key in s:
                yield path, key, f"not applied beside format {s['format']!r} (the format alone is enforced)"
    else:
        if "format" in s:
            yield path, "format", f"format {s['format']!r} is not one xgrammar knows: any string"
        if "pattern" in s:
            for key in ("minLength", "maxLength"):
                if key in s:
                    yield path, key, "not applied beside pattern (the pattern alone is enforced)"
    if "multipleOf" in s:
        types = s.get("type")
        if not (types == "integer" and isinstance(s["multipleOf"], int) and not isinstance(s["multipleOf"], bool)):
            yield path, "multipleOf", "enforced only on integers (type integer, integer multipleOf)"
    if isinstance(s.get("allOf"), list) and len(s["allOf"]) > 1:
        yield path, "allOf", "several allOf schemas are not all applied"
    if isinstance(s.get("oneOf"), list) and not _disjoint(s["oneOf"]):
        yield path, "oneOf", "treated as anyOf: more than one branch may match"
    ref = s.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        yield path, "$ref", "only references inside the schema are resolved: any JSON can be generated there"


def _disjoint(branches: list[Any]) -> bool:
    """True when every branch names one JSON type and no two branches can match the same value."""
    types = [b.get("type") if isinstance(b, dict) else None for b in branches]
    if not all(isinstance(t, str) for t in types) or len(set(types)) != len(types):
        return False
    return not {"integer", "number"} <= set(types)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
