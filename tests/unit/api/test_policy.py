"""What the operator reads from a TrustPolicy besides verification, and ``spec.owner``."""

from __future__ import annotations

import pytest

from modelfleet.api import parse_release
from modelfleet.api.policy import parse_checklist_items, policy_view, release_checklist
from modelfleet.core.checklist import ChecklistItem
from modelfleet.core.types import Owner
from modelfleet.errors import ConfigError

from .bodies import modelrelease, trustpolicy


def test_a_policy_view_holds_revocations_and_the_checklist() -> None:
    view = policy_view(trustpolicy())
    assert view.denied == {"sha256:" + "b" * 64}
    assert view.checklist == {ChecklistItem.SIGNED, ChecklistItem.OWNER}


def test_a_policy_without_a_checklist_does_not_say() -> None:
    body = trustpolicy()
    del body["spec"]["releaseChecklist"]
    assert release_checklist(body) is None
    body["spec"]["releaseChecklist"] = {"required": []}
    assert release_checklist(body) == frozenset()


def test_an_unknown_checklist_item_is_an_error_naming_the_field() -> None:
    body = trustpolicy()
    body["spec"]["releaseChecklist"] = {"required": ["Owner", "Vibes"]}
    with pytest.raises(ConfigError, match=r"spec\.releaseChecklist\.required: 'Vibes'"):
        release_checklist(body)


def test_the_operator_flag_reads_comma_separated_items() -> None:
    assert parse_checklist_items(["Signed", " Owner", ""], field="--release-checklist") == {
        ChecklistItem.SIGNED,
        ChecklistItem.OWNER,
    }
    assert parse_checklist_items([""], field="--release-checklist") == frozenset()
    with pytest.raises(ConfigError, match="--release-checklist: 'owner' is not"):
        parse_checklist_items(["owner"], field="--release-checklist")


def test_the_owner_is_read_from_the_spec() -> None:
    assert parse_release(modelrelease()).spec.owner == Owner("ml-platform", "oncall@example.com")


@pytest.mark.parametrize("field", ["name", "contact"])
def test_an_owner_missing_a_field_is_refused_naming_it(field: str) -> None:
    body = modelrelease()
    body["spec"]["owner"][field] = " "
    with pytest.raises(ConfigError, match=rf"spec\.owner\.{field}"):
        parse_release(body)
