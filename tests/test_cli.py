"""The ``fedbrats`` command: every command listed in its group, each living in the module named after it."""

import importlib

import pytest

from fedbrats.cli import BENCH, COMMANDS, GROUPS, main, module_of


def test_help_lists_every_command_in_its_group(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for group, commands in GROUPS.items():
        assert f"\n{group}:\n" in text
        block = text.split(f"\n{group}:\n", 1)[1].split("\n\n", 1)[0]
        assert [line.split()[0] for line in block.splitlines()] == list(commands)
    assert "==SUPPRESS==" not in text


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "bench"] + [f"bench {b}" for b in BENCH])
def test_a_command_lives_in_the_module_of_its_name(command):
    module = importlib.import_module(module_of(*command.split()))
    assert module.__name__.rsplit(".", 1)[1] == command.split()[-1].replace("-", "_")
    assert callable(module.add_arguments) and callable(module.run)


@pytest.mark.parametrize(
    "command, first",
    [
        ("infer", "model"),
        ("export", "model"),
        ("model-card", "model"),
        ("report", "source"),
        ("evaluate", "predictions"),
        ("simulate", "job"),
        ("build-job", "job"),
    ],
)
def test_commands_take_their_model_result_or_job_as_the_first_argument(command, first, capsys):
    with pytest.raises(SystemExit):
        main([command])
    assert f"the following arguments are required: {first}" in capsys.readouterr().err
