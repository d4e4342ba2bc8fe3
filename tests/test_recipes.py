"""Every shipped recipe parses and validates against the configs it names."""

from pathlib import Path

import pytest
import yaml

from leanformer.recipe import RECIPE_KEYS, Recipe
from leanformer.distill import DistillationConfig
from leanformer.distill.general import GeneralDistillationConfig
from leanformer.registry import method_by_name
from leanformer.training import TrainConfig

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses_and_round_trips(path):
    recipe = yaml.safe_load(path.read_text())
    assert set(recipe) <= set(RECIPE_KEYS)
    parsed = Recipe.from_yaml(path)
    assert Recipe.from_dict(yaml.safe_load(parsed.to_yaml())) == parsed
    method = method_by_name(recipe["method"])
    config = method.config_class.from_dict(recipe["config"])
    assert method.config_class.from_yaml(config.to_yaml()) == config
    sections = {"distillation": DistillationConfig, "train": TrainConfig, "general_train": TrainConfig, "general": GeneralDistillationConfig}
    for key, cls in sections.items():
        if key in recipe:
            assert cls.from_yaml(yaml.safe_dump(recipe[key])) == cls.from_dict(recipe[key])


def test_recipes_exist():
    assert {p.stem for p in RECIPES} >= {"kronecker8", "kronecker21"}
