"""A trainer owns its hyperparameters: a third-party trainer that declares a field no built-in trainer has is
accepted end to end by `compare` (task check, training, the artifact's record), and a bad value is refused
with exit 2 naming the task file and the field before any work. The built-in trainers' contracts: every
default cites a source, and the documented ranges hold for every method."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ftharness_plugins.peft_trainer import HYPERPARAMETERS
from ftharness_plugins.trl_dpo import DpoHyperparameters

from ftharness.cli import main
from ftharness.errors import BadInput
from ftharness.hookspecs import Method, hookimpl
from ftharness.hyperparameters import TrainingHyperparameters
from ftharness.plugins import get_plugins, reset_plugins, trainers
from ftharness.training.spec import validate_candidate
from ftharness.training.trainer import CandidateSpec
from ftharness.typed import from_mapping, spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extraction"
TRAINED: list[object] = []  # the typed hyperparameters each training received


@dataclass
class ScaleHyperparameters:
    """The third party's own contract: nothing of the built-in trainers' fields."""

    scale: float = spec(1.0, gt=0, le=4, source="a third-party trainer's choice",
                        help="factor on the final norm's weights")


class ScaleTrainer:
    """Trains nothing: multiplies the final norm's weights by ``scale`` and saves the model."""

    name = "scaler"
    methods = (Method("scale", "scaling", output="model", continues=False),)

    def hyperparameters(self, method: str) -> type:
        return ScaleHyperparameters

    def unavailable_reason(self, method: str | None = None) -> str | None:
        return None

    def train(self, job):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ftharness.training.trainer import TrainResult

        hp = job.hyperparameters
        TRAINED.append(hp)
        model = AutoModelForCausalLM.from_pretrained(str(job.base_model_path))
        with torch.no_grad():
            model.model.norm.weight.mul_(hp.scale)
        model.save_pretrained(job.out_dir)
        AutoTokenizer.from_pretrained(str(job.base_model_path)).save_pretrained(job.out_dir)
        n = sum(p.numel() for p in model.parameters())
        return TrainResult(wall_s=0.0, train_tokens=0, tokens_per_s=0.0, peak_memory_bytes=0, memory_kind="rss",
                           trainable_params=0, total_params=n, extra={"scale": hp.scale})


@hookimpl
def register_trainers(register):
    register(ScaleTrainer())


@pytest.fixture
def scaler():
    """This module, registered on the plugin manager as a third-party plugin added in code."""
    reset_plugins()
    TRAINED.clear()
    get_plugins().add_plugin(sys.modules[__name__], "scaler")
    yield trainers()["scaler"]
    reset_plugins()


def _task(tmp_path: Path, model_dir: Path, hyperparameters: str) -> Path:
    rows = [json.loads(line) for line in (EXAMPLE / "train.jsonl").read_text().splitlines()]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:24]))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[24:28]))
    (tmp_path / "fmt.yaml").write_text("name: fmt\nmetrics:\n  format: {}\ngates:\n  format.parse_rate: '>= 0.9'\n")
    path = tmp_path / "task.yaml"
    path.write_text(f"""name: third-party
base_model: {model_dir}
instruction_file: {EXAMPLE / "instruction.txt"}
data: {{train: train.jsonl, eval: eval.jsonl}}
validation: {{min: 4}}
generation: {{max_new_tokens: 4, batch_size: 4}}
candidates:
  - name: scaled
    trainer: scaler
    method: scale
    hyperparameters: {hyperparameters}
suites: [fmt.yaml]
decision: {{bootstrap_samples: 100, merged_latency_prompts: 0}}
""")
    return path


@pytest.mark.slow
def test_third_party_hyperparameters_are_accepted_end_to_end(scaler, tiny_model_dir, isolated_cache, tmp_path,
                                                              capsys):
    task = _task(tmp_path, tiny_model_dir, "{scale: 2}")
    code = main(["compare", str(task), "--out", str(tmp_path / "reports"), "--no-progress", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err  # the gates judge the tiny model; the contract is what is tested here
    assert [type(hp) for hp in TRAINED] == [ScaleHyperparameters] and TRAINED[0].scale == 2.0
    (record,) = [json.loads(p.read_text()) for p in (isolated_cache / "artifacts").glob("*/candidate.json")]
    assert record["hyperparameters"] == {"scale": 2.0} and record["spec"]["trainer"] == "scaler"


@pytest.mark.parametrize("hyperparameters, field, reason", [
    ("{scale: 5}", "candidates.scaled.hyperparameters.scale", "must be <= 4, got 5"),
    ("{scale: .nan}", "candidates.scaled.hyperparameters.scale", "must be a finite number"),
    ("{learning_rate: 1.0e-4}", "candidates.scaled.hyperparameters.learning_rate",
     "unknown hyperparameter for scaler/scale; known: scale"),
])
def test_third_party_bad_value_exits_2_naming_file_and_field_before_any_work(
        scaler, tiny_model_dir, isolated_cache, tmp_path, capsys, hyperparameters, field, reason):
    task = _task(tmp_path, tiny_model_dir, hyperparameters)
    code = main(["compare", str(task), "--out", str(tmp_path / "reports"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{task}:" in err and f"{field}: {reason}" in err
    assert TRAINED == [] and not (tmp_path / "reports").exists()
    assert not (isolated_cache / "artifacts").exists()


def test_a_builtin_trainer_is_checked_against_its_own_contract_only(scaler):
    """The same values, two trainers: each accepts what it declares, whatever the other one knows."""
    assert validate_candidate(CandidateSpec("c", trainer="scaler", method="scale",
                                            hyperparameters={"scale": 3})).scale == 3.0
    with pytest.raises(BadInput, match="hyperparameters.scale: unknown hyperparameter for peft/lora"):
        validate_candidate(CandidateSpec("c", hyperparameters={"scale": 3}))
    with pytest.raises(BadInput, match="method: scaler does not train lora"):
        validate_candidate(CandidateSpec("c", trainer="scaler"))


# -- the built-in trainers' contracts ---------------------------------------------------------------------


BUILTIN = [*HYPERPARAMETERS.items(), ("dpo", DpoHyperparameters)]  # unsloth reuses peft's LoRA class


def test_every_declared_method_has_a_hyperparameter_class():
    reset_plugins()
    for name in ("peft", "trl-dpo", "unsloth"):
        trainer = trainers()[name]
        for method in trainer.methods:
            assert dataclasses.is_dataclass(trainer.hyperparameters(method.name)), (name, method.name)


@pytest.mark.parametrize("method, cls", BUILTIN, ids=[m for m, _ in BUILTIN])
def test_every_builtin_default_cites_a_source_and_passes_its_own_contract(method, cls):
    values = dataclasses.asdict(cls())
    assert from_mapping(cls, values) == cls()
    for f in dataclasses.fields(cls):
        if f.default is not None:
            assert f.metadata.get("source"), f"{method}: {f.name} has no source"


@pytest.mark.parametrize("name, bad, good", [
    ("learning_rate", [0, -1e-4, float("inf"), float("nan")], [1e-6, 3]),
    ("max_steps", [0, -2, 1.5], [1, None]),
    ("warmup_ratio", [-0.1, 1, 1.5], [0, 0.5]),
    ("weight_decay", [-0.01], [0, 0.1]),
    ("max_grad_norm", [0, -1], [0.1]),
    ("epochs", [0, -1], [0.5, 3]),
    ("batch_size", [0, True, 1.0], [1]),
    ("lr_scheduler", ["cosine_annealing", 1], ["linear", "constant_with_warmup"]),
    ("optimizer", ["adam", "AdamW"], ["adamw_torch", "paged_adamw_8bit", "sgd"]),
    ("dtype", ["fp16"], ["bfloat16", "auto"]),
])
def test_training_ranges(name, bad, good):
    for value in bad:
        with pytest.raises(BadInput):
            validate_candidate(CandidateSpec("c", hyperparameters={name: value}))
    for value in good:
        validate_candidate(CandidateSpec("c", hyperparameters={name: value}))


@pytest.mark.parametrize("method, name, bad, good", [
    ("lora", "lora_dropout", [-0.1, 1], [0, 0.5]),
    ("lora", "lora_alpha", [0, -8], [1, 64]),
    ("lora", "r", [0], [1, 64]),
    ("lora", "target_modules", [[], "", 3], ["all-linear", ["q_proj", "v_proj"]]),
    ("prefix", "num_virtual_tokens", [0], [1]),
    ("prompt-tuning", "num_virtual_tokens", [0], [8]),
    ("partial", "trainable_layers", [0], [1]),
    ("distill", "student", ["ia3", "full"], ["lora", "dora"]),
    ("lora", "prompt_loss_weight", [-0.5, 1.5], [0, 1]),
])
def test_method_ranges(method, name, bad, good):
    for value in bad:
        with pytest.raises(BadInput):
            validate_candidate(CandidateSpec("c", method=method, hyperparameters={name: value}))
    for value in good:
        validate_candidate(CandidateSpec("c", method=method, hyperparameters={name: value}))


def test_dpo_takes_beta_and_lora_but_no_sft_only_fields():
    hp = validate_candidate(CandidateSpec("d", trainer="trl-dpo", method="dpo", hyperparameters={"beta": 0.2}))
    assert hp.beta == 0.2 and hp.r == 16 and hp.learning_rate == 5e-6
    for name in ("padding_free", "prompt_loss_weight"):
        with pytest.raises(BadInput, match=f"hyperparameters.{name}: unknown hyperparameter for trl-dpo/dpo"):
            validate_candidate(CandidateSpec("d", trainer="trl-dpo", method="dpo", hyperparameters={name: 0}))
    with pytest.raises(BadInput, match="beta: must be > 0"):
        validate_candidate(CandidateSpec("d", trainer="trl-dpo", method="dpo", hyperparameters={"beta": 0}))


def test_the_shared_base_names_the_transformers_choices():
    """The scheduler and optimizer names are transformers' own (its enums, read from the installed library)."""
    transformers = pytest.importorskip("transformers")
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    from ftharness.hyperparameters import LR_SCHEDULERS, OPTIMIZERS

    assert set(LR_SCHEDULERS) == {s.value for s in SchedulerType}, transformers.__version__
    assert set(OPTIMIZERS) == {o.value for o in OptimizerNames}, transformers.__version__
    assert {f.name for f in dataclasses.fields(TrainingHyperparameters)} >= {"lr_scheduler", "optimizer"}
