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
