"""The torch-free index of names (engine/catalog.py) is the registries' own, entry for entry."""

from __future__ import annotations

from engine import catalog
from engine.actions import MASK0_ACTIONS, MASK1_ACTIONS
from engine.criteria import COUNTS, CRITERIA, SCOPES
from engine.datasets import DATASETS
from engine.models import BIAS_INITS, BN_INITS, INIT_SCHEMES, MODELS


def test_names_match_the_registries() -> None:
    assert catalog.CRITERIA == tuple(CRITERIA)
    assert catalog.MASK1_ACTIONS == tuple(MASK1_ACTIONS)
    assert catalog.MASK0_ACTIONS == tuple(MASK0_ACTIONS)
    assert catalog.SCOPES == tuple(SCOPES)
    assert catalog.COUNTS == tuple(COUNTS)
    assert catalog.INIT_SCHEMES == tuple(INIT_SCHEMES)
    assert catalog.BN_INITS == tuple(BN_INITS) and catalog.BIAS_INITS == tuple(BIAS_INITS)
    assert tuple(catalog.DATASETS) == tuple(DATASETS)
    assert tuple(catalog.MODELS) == tuple(MODELS)


def test_descriptions_and_shapes_match_the_registries() -> None:
    for name, spec in DATASETS.items():
        info = catalog.DATASETS[name]
        assert (info.description, info.input_shape, info.num_classes) == (spec.description, spec.input_shape,
                                                                          spec.num_classes)
    for name, spec in MODELS.items():
        info = catalog.MODELS[name]
        assert (info.description, info.needs_image) == (spec.description, spec.needs_image)


def test_choice_hints_are_the_docstrings_first_lines() -> None:
    for key, registry in (("prune.criterion", CRITERIA), ("prune.mask1", MASK1_ACTIONS),
                          ("prune.mask0", MASK0_ACTIONS)):
        assert tuple(catalog.CHOICE_HELP[key]) == tuple(registry)
        for name, fn in registry.items():
            assert catalog.CHOICE_HELP[key][name] == (fn.__doc__ or "").strip().splitlines()[0]
