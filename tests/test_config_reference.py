"""The config reference is generated from the validator's schema and stays true: every key is
described, the shipped page is the generator's output, and every default it states is the one a
run without that key uses."""

import dataclasses
from pathlib import Path

from nqpf_sens.config import FACTOR_KEYS, SCHEMA, config_from_dict
from nqpf_sens.config_reference import DEFAULTS, FIELDS, HELP, reference_markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_every_key_the_validator_accepts_is_described_and_nothing_else():
    schema = {**{s: set(keys) for s, keys in SCHEMA.items()}, "factors": set(FACTOR_KEYS)}
    assert {s: set(keys) for s, keys in HELP.items()} == schema


def test_the_shipped_page_is_the_generators_output():
    assert PAGE.read_text(encoding="utf-8") == reference_markdown(), (
        "run: python -m nqpf_sens.config_reference > docs/config.md"
    )


def test_the_stated_defaults_are_what_a_config_without_the_key_gets():
    config = config_from_dict({})
    holders = {
        "run": config,
        "data": config.data,
        "pipeline": config.pipeline,
        "tiers": config.pipeline.tiers,
        "sampling": config.sampling,
        "outputs": config.outputs,
        "audit": config.audit,
    }
    checked = 0
    for section, keys in SCHEMA.items():
        for key in keys:
            holder, name = FIELDS.get((section, key), (DEFAULTS[section], key))
            fields = {f.name: f for f in dataclasses.fields(holder)} if holder else {}
            if name not in fields or fields[name].default is dataclasses.MISSING:
                continue
            used = config if holder is type(config) else holders[section]
            assert getattr(used, name) == fields[name].default, f"[{section}] {key}"
            checked += 1
    assert checked >= 50
