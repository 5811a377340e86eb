"""The decision: the best option that passes every gate, which answer of the decision chart it is, and
whether it is worth its cost.

Every option measures one of four answers (``OptionRecord.answer``; ``records.ANSWERS``, simplest first):
``prompt`` (a prompting baseline), ``rag`` (prompting with chunks retrieved from the knowledge base),
``finetune`` (a trained candidate), ``rag+finetune`` (a candidate trained and served with retrieval).

Rules, in order:
1. Only options that pass every gate (their suites' gates and the task's) can be recommended; if none
   does, nothing is recommended (exit 1).
2. Among those, the best on the decision metric is the front runner, ties going to the cheaper request
   (fewer prompt tokens), then to the simpler answer.
3. The front runner is kept only when its paired difference against the best *passing* option of every
   simpler answer is outside the noise (``stats.paired_compare``: the whole confidence interval on the good
   side of zero). Against the first simpler answer it does not beat, that simpler option is recommended
   and the front runner's result is called inconclusive: what is simpler to build and run wins a tie.
   An answer with no passing option is not weighed. The decision also records the recommended option
   against the best option of every other answer (``Decision.comparisons``).
4. The cost is stated, not hidden: training cost = measured wall time x an hourly price (the planner
   catalogue's GPU price when trained on a GPU, else the task's stated CPU price), and per-request prompt
   tokens saved x requests per month x the stated token price, giving a payback time. An endpoint
   baseline's tokens are priced at its own stated prices (input and output), shown per 1,000 requests
   beside the local options' prompt cost.
"""

from __future__ import annotations

from typing import Any

from ftharness.compare.stats import paired_compare
from ftharness.report.records import ANSWERS, Decision, OptionCost, OptionRecord, PairedComparison
from ftharness.report.units import usd


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.3g}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def gpu_price(gpu: str | None) -> tuple[float | None, str]:
    """$/h of a planner-catalogue GPU (None when unknown or not given)."""
    if not gpu:
        return None, ""
    try:
        from ftharness.planner.catalogue import get_gpu

        g = get_gpu(gpu)
    except Exception:
        return None, ""
    price = getattr(g, "usd_per_hour", None)
    if isinstance(price, int | float):
        return float(price), f"{gpu} at ${price:.2f}/h ({getattr(g, 'price_source', 'planner catalogue')})"
    return None, ""


def option_costs(option: OptionRecord, spec: Any) -> OptionCost:
    """Training and per-request cost of one option from what was measured."""
    prompt_tokens = option.cost.prompt_tokens_mean
    training_s, training_usd, basis = 0.0, 0.0, ""
    if option.training is not None:
        training_s = option.training.total_wall_s
        on_gpu = option.training.memory_kind.startswith("cuda")
        price, basis = gpu_price(spec.gpu) if on_gpu else (None, "")
        if price is None:
            price = spec.cpu_usd_per_hour
            basis = (
                f"CPU at ${price:.2f}/h (stated assumption)"
                if not on_gpu
                else f"GPU price unknown; CPU price ${price:.2f}/h used (set decision.gpu)"
            )
        training_usd = training_s / 3600 * price
        labelling = option.distillation
        if labelling is not None:  # the student needs its teacher's labels before it can train
            training_s += labelling.wall_s
            training_usd += labelling.wall_s / 3600 * price if labelling.usd is None else labelling.usd
    endpoint = option.endpoint
    per_token = (endpoint.price_per_million_input if endpoint else spec.usd_per_million_prompt_tokens) / 1e6
    return OptionCost(
        prompt_tokens_mean=prompt_tokens,
        latency_s_mean=option.cost.latency_s_mean,
        monthly_prompt_usd=prompt_tokens * spec.requests_per_month * per_token,
        requests_per_month=spec.requests_per_month,
        usd_per_prompt_token=per_token,
        usd_per_1k_requests=endpoint.usd_per_1k_requests if endpoint else prompt_tokens * per_token * 1000,
        training_s=training_s,
        training_usd=training_usd,
        price_basis=basis,
    )


def _value(option: OptionRecord, metric: str) -> float | None:
    v = option.metrics.get(metric)
    return None if v is None else float(v)


def _rank_key(option: OptionRecord, metric: str, higher: bool) -> tuple:
    v = _value(option, metric)
    v = float("-inf") if v is None else (v if higher else -v)
    return (-v, option.cost.prompt_tokens_mean, ANSWERS.index(option.answer), option.name)


def gate_summary(option: OptionRecord, limit: int = 4) -> list[str]:
    """'toxicity.max 0.00 (<= 0.01)' for the option's gates; failed gates first."""
    gates = sorted(option.gates, key=lambda g: g.passed)
    return [
        f"{g.name} {_fmt(g.value)} ({g.op} {g.threshold:g}){'' if g.passed else ' FAILED'}" for g in gates[:limit]
    ]


def decide(options: list[OptionRecord], spec: Any, *, seed: int = 0) -> Decision:
    """The decision over measured options. ``spec`` is the task's
    :class:`~ftharness.compare.task.DecisionSpec`."""
    metric, higher = spec.metric, spec.higher_is_better
    label = metric.split(".", 1)[-1].replace("_", " ")
    baselines = [o for o in options if o.kind == "baseline"]
    passing = [o for o in options if o.passed]
    costs = {o.name: option_costs(o, spec) for o in options}
    best_baseline = min(baselines, key=lambda o: _rank_key(o, metric, higher)) if baselines else None
    assumptions = [
        f"CPU training priced at ${spec.cpu_usd_per_hour:.2f}/h",
        f"{spec.requests_per_month:,} requests/month at ${spec.usd_per_million_prompt_tokens:.2f} per million prompt tokens",
        f"differences judged at {spec.confidence:.0%} confidence on the paired per-example {metric}",
    ]
    common = {
        "metric": metric,
        "best_baseline": best_baseline.name if best_baseline else None,
        "costs": costs,
        "assumptions": assumptions,
    }
    if not passing:
        reasons = [f"{o.name}: " + "; ".join(gate_summary(o, 3)) for o in options]
        # How far training got anyway: the best candidate against the best prompting baseline.
        candidates = [o for o in options if o.kind == "candidate"]
        comparison, note = None, None
        if candidates and best_baseline is not None:
            top = min(candidates, key=lambda o: _rank_key(o, metric, higher))
            comparison, note = _compare(top, best_baseline, metric, higher, spec, seed)
            reasons.insert(
                0,
                f"best candidate {top.name} vs best prompting baseline {best_baseline.name} on {label}: "
                f"{_fmt(_value(top, metric))} vs {_fmt(_value(best_baseline, metric))} ({_ci(comparison)}, "
                f"{_verdict(comparison)})",
            )
        top_all = min(options, key=lambda o: _rank_key(o, metric, higher)) if options else None
        return Decision(
            verdict="none",
            recommended=None,
            recommended_kind=None,
            passes_all_gates=False,
            headline="no option passes every gate; nothing is recommended",
            reasons=reasons,
            comparison=comparison,
            comparison_note=note,
            comparisons=_against_every_answer(top_all, options, metric, higher, spec, seed),
            **common,
        )

    ranked = sorted(passing, key=lambda o: _rank_key(o, metric, higher))
    top = ranked[0]
    chosen, ref, comparison, note, reasons = _simplest_within_noise(top, ranked, metric, higher, spec, seed)
    if ref is None and top.kind == "candidate" and best_baseline is not None:
        # no prompting option passes: the candidate is still weighed against the best of them
        ref = best_baseline
        comparison, note = _compare(top, ref, metric, higher, spec, seed)
    c = costs[chosen.name]
    gates = "; ".join(gate_summary(chosen, 4))
    parts = [f"{chosen.name}: {label} {_fmt(_value(chosen, metric))}"]
    if chosen is top and ref is not None:
        parts[0] += f" vs {_fmt(_value(ref, metric))} for {ref.name}"
        if comparison is not None:
            parts.append(_ci(comparison))
    if gates:
        parts.append(gates)
    if chosen.kind == "candidate":
        parts.append(f"trained in {_duration(c.training_s)} ({usd(c.training_usd)})")
    parts.append(ADVICE[chosen.answer])
    headline = "; ".join(parts)
    if chosen.kind == "candidate":
        prompting = [o for o in ranked if o.kind == "baseline"]
        if not prompting and best_baseline is not None:
            reasons.append(
                f"no prompting baseline passes every gate; best was {best_baseline.name}: "
                + "; ".join(gate_summary(best_baseline, 2))
            )
        reasons.extend(_cost_reasons(chosen, ref or best_baseline, costs))
    elif chosen.answer == "rag" and ref is not None:
        reasons.extend(_cost_reasons(chosen, ref, costs))
    for o in options:
        if o is chosen or o.passed:
            continue
        reasons.append(f"{o.name} ({o.answer}) fails its gates: " + "; ".join(gate_summary(o, 2)))
    return Decision(
        verdict=chosen.answer,
        recommended=chosen.name,
        recommended_kind=chosen.kind,
        passes_all_gates=chosen.passed,
        headline=headline,
        reasons=reasons,
        comparison=comparison,
        comparison_note=note,
        comparisons=_against_every_answer(chosen, options, metric, higher, spec, seed),
        **common,
    )


ADVICE = {
    "prompt": "keep prompting, no training needed",
    "rag": "retrieve from the knowledge base; no training needed",
    "finetune": "recommend finetuning",
    "rag+finetune": "recommend finetuning with retrieval (trained and served with the retrieved chunks)",
}


def _simplest_within_noise(
    top: OptionRecord, ranked: list[OptionRecord], metric: str, higher: bool, spec: Any, seed: int
) -> tuple[OptionRecord, OptionRecord | None, PairedComparison | None, str | None, list[str]]:
    """(chosen, reference, comparison, note, reasons): the best passing option ``top`` is kept only if it
    beats the best passing option of every simpler answer (``ANSWERS``: prompt, rag, finetune,
    rag+finetune) outside the noise; the first simpler answer it does not beat is chosen instead (a tie
    goes to what is simpler to build and run). ``reference`` is the simpler option the comparison was made
    against: the one chosen instead, or the strongest simpler one ``top`` beat."""
    label = metric.split(".", 1)[-1].replace("_", " ")
    level = ANSWERS.index(top.answer)
    simpler = {}
    for o in ranked:  # best first: the first of each answer is its best passing option
        if ANSWERS.index(o.answer) < level:
            simpler.setdefault(o.answer, o)
    reasons: list[str] = []
    if not simpler:
        return top, None, None, None, reasons
    beaten: list[tuple[OptionRecord, PairedComparison | None, str | None]] = []
    for answer in ANSWERS[:level]:
        ref = simpler.get(answer)
        if ref is None:
            continue
        comparison, note = _compare(top, ref, metric, higher, spec, seed)
        if _verdict(comparison) != "better":
            reasons.append(
                f"{top.name} ({top.answer}) scores {label} {_fmt(_value(top, metric))} vs "
                f"{_fmt(_value(ref, metric))} for {ref.name} ({ref.answer}), but the difference is inside the "
                f"noise ({_ci(comparison)}): inconclusive, so the simpler {ref.answer} option is kept"
            )
            return ref, ref, comparison, note, reasons
        beaten.append((ref, comparison, note))
    ref, comparison, note = min(beaten, key=lambda b: _rank_key(b[0], metric, higher))
    for other, c, _ in beaten:
        reasons.append(f"{top.name} beats {other.name} ({other.answer}) outside the noise: {_ci(c)}")
    return top, ref, comparison, note, reasons


def _against_every_answer(chosen: OptionRecord | None, options: list[OptionRecord], metric: str, higher: bool,
                          spec: Any, seed: int) -> list[PairedComparison]:
    """The chosen option against the best option (by the decision metric, gates aside) of every other
    answer of the decision chart, with the usual paired statistics."""
    if chosen is None:
        return []
    out = []
    for answer in ANSWERS:
        others = [o for o in options if o.answer == answer and o is not chosen]
        if answer == chosen.answer or not others:
            continue
        best = min(others, key=lambda o: _rank_key(o, metric, higher))
        comparison, _ = _compare(chosen, best, metric, higher, spec, seed)
        if comparison is not None:
            out.append(comparison)
    return out


NO_PAIRED_SCORES = "no paired per-example scores"


def _compare(
    a: OptionRecord, b: OptionRecord, metric: str, higher: bool, spec: Any, seed: int
) -> tuple[PairedComparison | None, str | None]:
    """(the paired comparison, None), or (None, why there is none)."""
    sa, sb = a.per_sample.get(metric), b.per_sample.get(metric)
    if not sa or not sb or len(sa) != len(sb):
        return None, NO_PAIRED_SCORES
    comparison = paired_compare(
        sa,
        sb,
        option=a.name,
        reference=b.name,
        metric=metric,
        higher_is_better=higher,
        confidence=spec.confidence,
        n_resamples=spec.bootstrap_samples,
        seed=seed,
    )
    return comparison, None


def _verdict(c: PairedComparison | None) -> str:
    return "inconclusive" if c is None else c.verdict


def _ci(c: PairedComparison | None) -> str:
    if c is None:
        return "no paired scores"
    return f"diff {c.diff:+.2f}, {c.confidence:.0%} CI [{c.ci_low:+.2f}, {c.ci_high:+.2f}], p={c.p_value:.3g}"


def _cost_reasons(chosen: OptionRecord, ref: OptionRecord | None, costs: dict[str, OptionCost]) -> list[str]:
    c = costs[chosen.name]
    out: list[str] = []
    if ref is None:
        return out
    r = costs[ref.name]
    saved = r.prompt_tokens_mean - c.prompt_tokens_mean
    monthly = r.monthly_prompt_usd - c.monthly_prompt_usd
    line = (
        f"prompt tokens per request: {c.prompt_tokens_mean:.0f} vs {r.prompt_tokens_mean:.0f} for "
        f"{ref.name} ({saved:+.0f} saved)"
    )
    per_request = saved * c.usd_per_prompt_token
    if ref.endpoint is not None:  # a hosted model bills input and output tokens at its own prices
        per_request = ((r.usd_per_1k_requests or 0.0) - (c.usd_per_1k_requests or 0.0)) / 1000
        monthly = per_request * c.requests_per_month
        line += (
            f"; {usd(c.usd_per_1k_requests or 0.0)} vs {usd(r.usd_per_1k_requests or 0.0)} per 1,000 requests "
            f"({ref.name}: input and output tokens at its stated prices)"
        )
    if saved > 0 and per_request > 0 and c.training_usd > 0:
        line += (
            f"; {usd(monthly)}/month saved; the {usd(c.training_usd)} training pays for itself after "
            f"{c.training_usd / per_request:,.0f} requests"
        )
    out.append(line)
    if c.latency_s_mean and r.latency_s_mean:
        out.append(f"latency per request: {c.latency_s_mean:.2f} s vs {r.latency_s_mean:.2f} s (measured on this machine)")
    merged = chosen.merged_latency
    if merged is not None and merged.merged_latency_s_mean:
        out.append(
            f"served merged: {merged.merged_latency_s_mean:.2f} s vs {merged.adapter_latency_s_mean:.2f} s "
            f"with the adapter attached, per request on {merged.n} prompts"
        )
    if c.price_basis:
        out.append(f"training cost basis: {c.price_basis}")
    return out
