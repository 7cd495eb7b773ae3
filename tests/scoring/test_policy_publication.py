"""The policy's publication (公示) window: cited, and a policy file without the section keeps working."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from scoring.policy import DEFAULT_PUBLICATION_WORKING_DAYS, PolicyError, load_policy


def test_the_packaged_policy_sets_the_window_with_its_source():
    policy = load_policy()
    assert policy.publication is not None
    assert policy.publication_working_days == policy.publication.working_days == DEFAULT_PUBLICATION_WORKING_DAYS
    assert "park's own choice" in policy.publication.working_days_source


def test_a_policy_without_the_section_gets_the_default_and_a_window_without_a_source_is_refused(tmp_path):
    document = yaml.safe_load(resources.files("scoring").joinpath("data/policy.yaml").read_text(encoding="utf-8"))
    del document["publication"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert load_policy(path).publication_working_days == DEFAULT_PUBLICATION_WORKING_DAYS
    document["publication"] = {"working_days": 3}
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PolicyError, match="working_days_source"):
        load_policy(path)
