"""One word for each idea: sine's time steps are --num-steps and hello's input kind is --input, as on
the other tasks. The old spellings (--seq-len, --variant) still work and warn on stderr, and a run
folder written under the old field names (config.json holding seq_len or variant) still reruns
with --config and resumes with --resume. In-process: these are decided before a framework loads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks import hello, sine
from tasks.cli import parse_config

CASES = {  # task: (module, new flag and value, old flag, field, old field name)
    "sine": (sine, ["--num-steps", "7"], "--seq-len", "num_steps", "seq_len", 7),
    "hello": (hello, ["--input", "embedding"], "--variant", "input", "variant", "embedding"),
}


def parse(task: str, argv: list[str]):
    module = CASES[task][0]
    config_class = sine.SineConfig if task == "sine" else hello.HelloConfig
    return parse_config(config_class, task, ["--backend", "torch", *argv], module.__doc__)


@pytest.mark.parametrize("task", CASES)
def test_the_old_flag_means_the_new_one_and_warns(task: str, capsys) -> None:
    _, (new, value), old, field, _, expected = CASES[task]
    plain = parse(task, [new, value])
    assert "deprecated" not in capsys.readouterr().err
    aliased = parse(task, [old, value])
    err = capsys.readouterr().err
    assert err.strip() == f"warning: {old} is deprecated; use {new} (it means the same)."
    assert getattr(aliased, field) == getattr(plain, field) == expected
    assert aliased.saved() == plain.saved()  # config.json records the new name either way
    assert field in plain.saved() and CASES[task][4] not in plain.saved()


@pytest.mark.parametrize("task", CASES)
def test_the_old_flag_takes_the_new_flags_checks(task: str) -> None:
    from seqcore.errors import SeqcoreError

    old = CASES[task][2]
    with pytest.raises(SeqcoreError):  # argparse's type or choice check, as for the new spelling
        parse(task, [old, "nonsense"])


def _old_run(folder: Path, task: str) -> Path:
    """A config.json as seqcore 0.1.0 wrote it: the field under its old name."""
    _, _, _, _, old_field, value = CASES[task]
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"task": task, "config": {"backend": "torch", old_field: value}}))
    return folder


@pytest.mark.parametrize("task", CASES)
def test_a_config_saved_under_the_old_name_reruns_and_resumes(tmp_path: Path, task: str) -> None:
    _, _, _, field, old_field, value = CASES[task]
    folder = _old_run(tmp_path / "run", task)
    rerun = parse(task, ["--config", str(folder / "config.json")])
    assert getattr(rerun, field) == value
    resumed = parse(task, ["--out", str(folder), "--resume"])
    assert getattr(resumed, field) == value and old_field not in resumed.saved()


def test_a_config_with_both_names_takes_neither_silently(tmp_path: Path) -> None:
    """seq_len and num_steps together: the renamed one is read as num_steps; they cannot both stand."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"task": "sine", "config": {"backend": "torch", "seq_len": 5, "num_steps": 9}}))
    from seqcore.errors import SeqcoreError

    with pytest.raises(SeqcoreError) as refused:
        parse("sine", ["--config", str(folder / "config.json")])
    assert "seq_len" in str(refused.value) and "num_steps" in str(refused.value)


def test_a_checkpoint_position_with_the_old_step_count_still_loads(tmp_path: Path) -> None:
    """EpochStats counted training steps as num_steps until 0.1.0 (now steps: num_steps is time
    steps everywhere); a mid-epoch position saved then resumes with the same count."""
    from seqcore.run.position import checked_position
    from seqcore.train.loop import EpochStats

    old = {"loss_sum": 12.5, "num_targets": 40, "num_steps": 3, "timed_tokens": 20, "timed_seconds": 0.5,
           "max_grad_norm": 1.25}
    position = checked_position(tmp_path / "model.safetensors", {"epochs_done": 1, "steps_done": 3, "stats": old})
    stats = EpochStats(**position.stats)
    assert stats.steps == 3 and stats.num_targets == 40 and not hasattr(stats, "num_steps")
    from seqcore.errors import SeqcoreError

    with pytest.raises(SeqcoreError, match="damaged resume position"):  # both words: not a file seqcore wrote
        checked_position(tmp_path / "model.safetensors", {"stats": {**old, "steps": 3}})
