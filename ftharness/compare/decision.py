"""The decision: the best option that passes every gate, and whether finetuning is worth its cost.

Rules, in order:
1. Only options that pass every gate (their suites' gates and the task's) can be recommended; if none
   does, nothing is recommended (exit 1).
2. Among those, the best on the decision metric wins, ties going to the cheaper request (fewer prompt
   tokens), then to a baseline (nothing to train or serve).
3. A trained candidate beats prompting only when its paired difference against the best *passing*
   prompting baseline is outside the noise (``stats.paired_compare``: the whole confidence interval
   on the good side of zero). Inside the noise the cheaper prompting baseline is recommended and the
   candidate's result is called inconclusive. With no passing baseline, a passing candidate is the only
   option that meets the gates and is recommended as such.
4. The cost is stated, not hidden: training cost = measured wall time x an hourly price (the planner
   catalogue's GPU price when trained on a GPU, else the task's stated CPU price), and per-request prompt
   tokens saved x requests per month x the stated token price, giving a payback time. An endpoint
   baseline's tokens are priced at its own stated prices (input and output), shown per 1,000 requests
   beside the local options' prompt cost.
"""

from __future__ import annotations

from typing import Any

from ftharness.compare.stats import paired_compare
from ftharness.report.records import Decision, OptionCost, OptionRecord, PairedComparison
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
    return (-v, option.cost.prompt_tokens_mean, 0 if option.kind == "baseline" else 1, option.name)


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
        return Decision(
            verdict="none",
            recommended=None,
            recommended_kind=None,
            passes_all_gates=False,
            headline="no option passes every gate; nothing is recommended",
            reasons=reasons,
            comparison=comparison,
            comparison_note=note,
            **common,
        )

    ranked = sorted(passing, key=lambda o: _rank_key(o, metric, higher))
    best = ranked[0]
    passing_baselines = [o for o in ranked if o.kind == "baseline"]
    ref = passing_baselines[0] if passing_baselines else best_baseline
    reasons: list[str] = []
    comparison, note = None, None
    if best.kind == "candidate" and ref is not None:
        comparison, note = _compare(best, ref, metric, higher, spec, seed)
        if passing_baselines and _verdict(comparison) != "better":
            reasons.append(
                f"{best.name} scores {label} {_fmt(_value(best, metric))} vs {_fmt(_value(ref, metric))} for "
                f"{ref.name}, but the difference is inside the noise ({_ci(comparison)}): inconclusive, "
                f"so the cheaper prompting option is kept"
            )
            best = ref
    chosen = best
    c = costs[chosen.name]
    gates = "; ".join(gate_summary(chosen, 4))
    if chosen.kind == "candidate":
        verdict = "finetune"
        parts = [f"{chosen.name}: {label} {_fmt(_value(chosen, metric))}"]
        if ref is not None:
            parts[0] += f" vs {_fmt(_value(ref, metric))} for {ref.name}"
        if comparison is not None:
            parts.append(_ci(comparison))
        if gates:
            parts.append(gates)
        parts.append(f"trained in {_duration(c.training_s)} ({usd(c.training_usd)})")
        parts.append("recommend finetuning")
        headline = "; ".join(parts)
        if ref is not None and not passing_baselines:
            reasons.append(
                f"no prompting baseline passes every gate; best was {ref.name}: " + "; ".join(gate_summary(ref, 2))
            )
        reasons.extend(_cost_reasons(chosen, ref, costs))
    else:
        verdict = "prompt"
        headline = f"{chosen.name}: {label} {_fmt(_value(chosen, metric))}; {gates}; keep prompting, no training needed"
        for o in options:
            if o.kind == "candidate" and not o.passed:
                reasons.append(f"{o.name} fails its gates: " + "; ".join(gate_summary(o, 2)))
    for o in options:
        if o is chosen or o.kind != "baseline" or o.passed:
            continue
        reasons.append(f"{o.name} fails: " + "; ".join(gate_summary(o, 2)))
    return Decision(
        verdict=verdict,
        recommended=chosen.name,
        recommended_kind=chosen.kind,
        passes_all_gates=chosen.passed,
        headline=headline,
        reasons=reasons,
        comparison=comparison,
        comparison_note=note,
        **common,
    )


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
