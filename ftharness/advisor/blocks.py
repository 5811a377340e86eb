"""Task-file blocks for the advice: each next step of ``advise --from-run`` that changes training comes with
the candidate that runs it.

Contract: a :class:`CandidateBlock` is one entry of a task file's ``candidates:`` list, written as YAML
(:attr:`CandidateBlock.yaml`). It is derived from a candidate the run measured (that candidate's task-file
entry as results.json records it, :attr:`~ftharness.advisor.measured.MeasuredOption.entry`: its name,
trainer, method, hyperparameters and the fields it set), or, when the run trained none, it is the default
LoRA candidate. Appended to the ``candidates:`` of the run's task file, the block loads
(:func:`ftharness.compare.task.load_task`) once the task has the fields listed in ``needs`` (a DPO stage
needs ``data.preference``; an empty ``needs`` means the run's task as it stands). A block:

- never fixes a hyperparameter it sweeps (the loader refuses "swept and also fixed"): a swept key is taken
  out of ``hyperparameters``;
- sweeps only hyperparameters its trainer accepts for its method, and ``replay.fraction``;
- puts ``replay`` on supervised candidates only (those that train on the task's ``train`` rows);
- is named after the candidate it derives from, with a suffix that says what changed, unique among the
  run's options.

The values a block derives: learning rates of 1/2 and 1/4 of the one the candidate trained with (its own,
else its trainer's default), replay of general text at the task loader's default share (0.2) against none,
ranks of 2x and 4x, twice the epochs (or steps). Nothing here imports a training library: reading a
trainer's defaults loads only its hyperparameter classes.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftharness.advisor.measured import MeasuredOption

REPLAY_FRACTION = 0.2  # the task loader's default replay share (ftharness.compare.task.ReplaySpec)
REPLAY_MAX = 0.5  # a replay share sweep stops here: beyond it general text outweighs the task's rows
HALVING_MIN_POINTS = 3  # below this, successive halving saves no training over the grid
# Key order of a block as people write candidates (the task files under examples/); unknown keys follow.
ORDER = ("name", "trainer", "method", "start_from", "teacher", "data", "prompt", "constrained", "retrieval",
         "unlabeled", "seed", "hyperparameters", "replay", "sweep", "sweep_strategy")


@dataclass(frozen=True)
class CandidateBlock:
    """One candidate to add to the task file's ``candidates:``, and where it comes from."""

    name: str
    entry: dict[str, Any]  # the candidate as the task file writes it
    derived_from: str | None  # the run's candidate it changes (None: a new one)
    needs: tuple[str, ...] = ()  # task fields it needs beyond the run's task (data.preference)
    step: int | None = None  # its 1-based position in the advice's next steps

    @property
    def yaml(self) -> str:
        """The block as YAML: one item of a ``candidates:`` list (``- name: ...``)."""
        import yaml

        return yaml.safe_dump([self.entry], sort_keys=False, default_flow_style=None, allow_unicode=True,
                              width=110).rstrip("\n")

    @property
    def points(self) -> int:
        """Candidates its sweep expands into (1 without a sweep)."""
        return math.prod(len(v) for v in (self.entry.get("sweep") or {}).values())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "derived_from": self.derived_from, "step": self.step,
                "needs": list(self.needs), "entry": self.entry, "yaml": self.yaml}


def ordered(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with its keys in the order of :data:`ORDER`."""
    known = {k: entry[k] for k in ORDER if k in entry}
    return {**known, **{k: v for k, v in entry.items() if k not in known}}


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``... when an option of the run (or an earlier block) has it; the name
    is added to ``taken``."""
    name = base
    for i in itertools.count(2):
        if name not in taken:
            break
        name = f"{base}-{i}"
    taken.add(name)
    return name


def trainer_default(trainer: str, method: str, key: str) -> Any | None:
    """The default of hyperparameter ``key`` in the class ``trainer`` declares for ``method``; None when the
    trainer is not installed here, does not train the method or has no such hyperparameter."""
    fields = _hyperparameter_fields(trainer, method)
    f = fields.get(key) if fields is not None else None
    if f is None:
        return None
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def accepts(trainer: str, method: str, key: str) -> bool:
    """``trainer`` declares hyperparameter ``key`` for ``method`` (False when it is not installed here)."""
    fields = _hyperparameter_fields(trainer, method)
    return fields is not None and key in fields


def _hyperparameter_fields(trainer: str, method: str) -> dict[str, dataclasses.Field] | None:
    from ftharness.errors import BadInput
    from ftharness.plugins import get_plugins
    from ftharness.training.spec import hyperparameter_class

    plugins = get_plugins()
    try:
        plugins.training_method(trainer, method)
        cls = hyperparameter_class(plugins.trainer(trainer).obj, method)
    except (BadInput, ImportError):
        return None
    return {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else None


def trainer_for(method: str) -> str | None:
    """The installed trainer to name for ``method`` (the one the advice names elsewhere)."""
    from ftharness.plugins import get_plugins

    return get_plugins().trainer_for(method)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return value


def _round(x: float) -> float:
    """Two significant digits: learning rates as people write them (2.5e-4, not 0.00025000000000000006)."""
    return float(f"{x:.2g}")


def _own(o: MeasuredOption, key: str) -> Any | None:
    """The value ``o`` trained with: its own hyperparameter, else its trainer's default."""
    hp = o.entry.get("hyperparameters") or {}
    if key in hp:
        return hp[key]
    return trainer_default(o.entry.get("trainer", "peft"), o.entry.get("method", "lora"), key)


def _derived(o: MeasuredOption, suffix: str, taken: set[str], **changes: Any) -> dict[str, Any]:
    """``o``'s entry renamed ``NAME-SUFFIX``, with ``changes`` (a None value removes the key) and without the
    sweep settings it was chosen by (the run recorded a single point)."""
    entry = {k: v for k, v in o.entry.items() if k not in ("sweep", "sweep_strategy")}
    entry["name"] = unique_name(f"{o.name}-{suffix}", taken)
    for key, value in changes.items():
        if value is None or value == {}:
            entry.pop(key, None)
        else:
            entry[key] = value
    return ordered(entry)


def _strategy(sweep: dict[str, list[Any]]) -> str | None:
    points = math.prod(len(v) for v in sweep.values())
    return "halving" if points >= HALVING_MIN_POINTS else None


def forgetting_block(o: MeasuredOption, taken: set[str]) -> CandidateBlock | None:
    """``o`` retrained to forget less: lower learning rates, and (supervised) general-text replay against
    none, as one sweep; None when there is nothing to vary (no entry, no known learning rate, no replay)."""
    if not o.entry:
        return None
    hp = dict(o.entry.get("hyperparameters") or {})
    sweep: dict[str, list[Any]] = {}
    lr = _number(_own(o, "learning_rate"))
    if lr is not None:
        sweep["learning_rate"] = [_round(lr / 2), _round(lr / 4)]
        hp.pop("learning_rate", None)
    replay = None
    if o.data == "train":
        current = dict(o.entry.get("replay") or {})
        share = float(current.get("fraction") or 0.0)
        if share == 0:
            replay = {"fraction": REPLAY_FRACTION, "source": current.get("source", "self")}
            sweep["replay.fraction"] = [0.0, REPLAY_FRACTION]
        elif share < REPLAY_MAX:
            replay = {"fraction": share, "source": current.get("source", "self")}
            sweep["replay.fraction"] = [share, _round(min(2 * share, REPLAY_MAX))]
    if not sweep:
        return None
    entry = _derived(o, "replay" if replay is not None else "lower-lr", taken, hyperparameters=hp, replay=replay,
                     sweep=sweep, sweep_strategy=_strategy(sweep))
    return CandidateBlock(entry["name"], entry, o.name)


def rank_block(o: MeasuredOption, taken: set[str]) -> CandidateBlock | None:
    """``o`` with 2x and 4x its rank (its own ``r``, else its trainer's default); None when its method has
    no rank."""
    if not o.entry or not accepts(o.entry.get("trainer", "peft"), o.entry.get("method", "lora"), "r"):
        return None
    r = _own(o, "r")
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        return None
    hp = {k: v for k, v in (o.entry.get("hyperparameters") or {}).items() if k != "r"}
    sweep = {"r": [2 * r, 4 * r]}
    entry = _derived(o, "rank", taken, hyperparameters=hp, sweep=sweep, sweep_strategy=_strategy(sweep))
    return CandidateBlock(entry["name"], entry, o.name)


def longer_block(o: MeasuredOption, taken: set[str]) -> CandidateBlock | None:
    """``o`` trained twice as long: twice its ``max_steps`` when it set them, else twice its epochs."""
    if not o.entry:
        return None
    hp = dict(o.entry.get("hyperparameters") or {})
    key = "max_steps" if _number(hp.get("max_steps")) is not None else "epochs"
    value = _number(_own(o, key))
    if value is None:
        return None
    hp[key] = 2 * value
    entry = _derived(o, "longer", taken, hyperparameters=hp)
    return CandidateBlock(entry["name"], entry, o.name)


def dpo_block(o: MeasuredOption, taken: set[str], *, has_pairs: bool) -> CandidateBlock | None:
    """A DPO stage started from ``o`` (served as ``o`` is: same prompt and decoding); None when ``o`` already
    trains on preference pairs or no installed trainer trains DPO."""
    trainer = trainer_for("dpo")
    if trainer is None or not o.entry or o.data != "train":
        return None
    entry: dict[str, Any] = {"name": unique_name(f"{o.name}-dpo", taken), "trainer": trainer, "method": "dpo",
                             "start_from": o.name}
    entry.update({k: o.entry[k] for k in ("prompt", "constrained") if k in o.entry})
    return CandidateBlock(entry["name"], ordered(entry), o.name, needs=() if has_pairs else ("data.preference",))


def first_candidate_block(taken: set[str]) -> CandidateBlock | None:
    """The default LoRA candidate, for a run that trained none (None: no installed trainer trains LoRA)."""
    trainer = trainer_for("lora")
    if trainer is None:
        return None
    name = unique_name("lora", taken)
    return CandidateBlock(name, {"name": name, "trainer": trainer, "method": "lora"}, None)
