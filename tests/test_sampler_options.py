"""The pure part of samplers that reports and `submit` use: a sampler's short label (its name and
the options that differ from the defaults), and how `submit -S` options go to several samplers."""

from __future__ import annotations

import pytest

from boundary.api.errors import ConfigError, UnknownName
from boundary.api.samplers import option_names, sampler_entries, sampler_spec, stored_sampler


@pytest.mark.parametrize(("name", "options", "label"), [
    ("plain", {}, "plain"),
    ("power-mcmc", {}, "power-mcmc"),
    ("power-mcmc", {"block_tokens": "32", "mcmc_steps": 2}, "power-mcmc block_tokens=32 mcmc_steps=2"),
    ("power-mcmc", {"mcmc_steps": 2, "block_tokens": 32}, "power-mcmc block_tokens=32 mcmc_steps=2"),  # fields' order
    # alpha=2 makes the proposal temperature 0.5: derived, so not shown; set apart from 1/alpha, it is
    ("power-mcmc", {"alpha": 2}, "power-mcmc alpha=2"),
    ("power-mcmc", {"alpha": 2, "proposal_temperature": 0.25}, "power-mcmc alpha=2 proposal_temperature=0.25"),
    ("power-mcmc", {"alpha": 4.0, "block_tokens": 192}, "power-mcmc"),  # the defaults, given explicitly
    ("power-smc", {"particles": 8, "ess_threshold": 1, "top_p": 0.95},
     "power-smc particles=8 ess_threshold=1 top_p=0.95"),
    ("power-smc", {"alpha": 3}, "power-smc alpha=3"),
])
def test_label_names_the_options_that_differ_from_the_defaults(name: str, options: dict, label: str) -> None:
    spec = sampler_spec(name, options)
    assert spec.label() == label
    assert stored_sampler(spec.name, spec.canonical()).label() == label  # the same after a trip to the database


def test_labels_of_samplers_that_differ_differ() -> None:
    specs = [sampler_spec("power-mcmc", o) for o in ({}, {"alpha": 2}, {"mcmc_steps": 3}, {"top_k": 50})]
    assert len({s.label() for s in specs}) == len(specs)
    assert sampler_spec("power-smc", {}).label() != sampler_spec("power-mcmc", {}).label()


def test_label_of_a_sampler_this_version_does_not_know_shows_its_options() -> None:
    assert stored_sampler("power-future", '{"beta":2}').label() == "power-future(beta=2)"


def test_submit_options_go_to_every_sampler_that_takes_them() -> None:
    entries = sampler_entries(["plain", "power-mcmc", "power-smc"],
                              {"alpha": "2", "mcmc_steps": "3", "particles": "8"})
    assert entries == [{"name": "plain"}, {"name": "power-mcmc", "alpha": "2", "mcmc_steps": "3"},
                       {"name": "power-smc", "alpha": "2", "particles": "8"}]
    assert sampler_entries([], {}) == [{"name": "plain"}]
    assert sampler_entries(["power-smc", "power-smc"], {}) == [{"name": "power-smc"}]
    assert option_names("plain") == () and option_names("power-mcmc")[:2] == ("alpha", "proposal_temperature")


def test_an_option_no_given_sampler_takes_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no sampler given takes option.s. mcmc_steps .samplers: power-smc"):
        sampler_entries(["power-smc"], {"mcmc_steps": "2", "particles": "4"})
    with pytest.raises(ConfigError, match="no sampler given takes option.s. alpha .samplers: plain; plain takes none"):
        sampler_entries([], {"alpha": "2"})
    with pytest.raises(UnknownName, match="power-xyz"):
        sampler_entries(["power-xyz"], {"alpha": "2"})
