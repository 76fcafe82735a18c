"""A cycle warm-starts from the champion only while the adapter's shape is unchanged: a task
whose recipe now asks for another rank (or alpha, targets, layers) trains from scratch, and
the evidence says why."""

from __future__ import annotations

import json
from dataclasses import replace

from tests.model_fixtures import tiny_recipe
from training.cycle_worker import warm_start


def champion_dir(tmp_path, recipe):
    path = tmp_path / "champion"
    path.mkdir()
    (path / "metadata.json").write_text(json.dumps({"recipe": recipe.as_dict()}))
    return path


def test_the_same_shape_warm_starts_whatever_the_schedule(tmp_path):
    recipe = tiny_recipe()
    champion = champion_dir(tmp_path, recipe)
    later = replace(recipe, learning_rate=3e-3, steps=99, max_seq_len=128)
    assert warm_start(champion, later) == (champion, None)
    assert warm_start(None, later) == (None, None)


def test_a_new_rank_or_target_list_trains_from_scratch_and_says_so(tmp_path):
    recipe = tiny_recipe()
    champion = champion_dir(tmp_path, recipe)
    start, why = warm_start(champion, replace(recipe, rank=32, target_modules=("q_proj",)))
    assert start is None
    assert "rank, target_modules" in why and "from scratch" in why


def test_an_adapter_without_a_stored_recipe_still_warm_starts(tmp_path):
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    assert warm_start(legacy, tiny_recipe()) == (legacy, None)
