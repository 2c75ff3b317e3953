import pytest

from benchmark.registry import Registry, UnknownNameError
from benchmark.runner import model_registry


def test_unknown_name_lists_known_and_close_match():
    with pytest.raises(UnknownNameError) as info:
        model_registry().get("sasrek")
    message = str(info.value)
    assert "did you mean 'sasrec'" in message.lower()
    assert "pop" in message


def test_duplicate_registration_is_an_error():
    registry = Registry("model")
    registry.register("a", object())
    with pytest.raises(ValueError, match="twice"):
        registry.register("a", object())


def test_lazy_entries_resolve_to_model_classes():
    from models.base import Model

    for name in model_registry().names():
        assert issubclass(model_registry().get(name), Model)


def test_every_option_has_help_with_its_default_and_every_command_examples():
    import argparse

    from benchmark.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        assert "example" in (command.epilog or command.description or ""), name
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.option_strings)
            has_default = action.default not in (None, False, []) and not action.required
            assert not has_default or "default" in action.help, (name, action.option_strings)
