"""The permission matrix: its invariants, and docs/roles.md saying the same thing."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.auth import PERMISSIONS, Role, UnknownPermission, is_allowed, roles_allowed
from libs.auth.roles import PLATFORM_WIDE

ROLES_DOC = Path(__file__).resolve().parents[3] / "docs" / "roles.md"


def test_admin_may_do_everything_in_the_tenant_and_nothing_platform_wide() -> None:
    for name, allowed in PERMISSIONS.items():
        assert (Role.ADMIN in allowed) == (name not in PLATFORM_WIDE), name


def test_only_the_operator_acts_on_every_tenant_at_once() -> None:
    assert PLATFORM_WIDE == {"ops:rebuild"}
    for name in PLATFORM_WIDE:
        assert roles_allowed(name) == {Role.OPERATOR}
    granted = {name for name, allowed in PERMISSIONS.items() if Role.OPERATOR in allowed}
    assert granted == {"ops:read", "ops:rebuild"}  # no tenant's customer data


def test_viewer_may_only_read() -> None:
    granted = {name for name, allowed in PERMISSIONS.items() if Role.VIEWER in allowed}
    assert granted == {"customers:read", "tickets:read"}
    assert all(name.endswith(":read") for name in granted)


def test_irreversible_operations_are_for_few_roles() -> None:
    assert roles_allowed("customers:erase") == {Role.ADMIN}
    assert roles_allowed("customers:merge") == {Role.ADMIN, Role.MANAGER}


def test_roles_outside_the_catalogue_grant_nothing() -> None:
    assert not is_allowed(["superuser", "root"], "customers:read")
    assert is_allowed(["superuser", "sales"], "customers:write")


def test_unknown_permissions_are_an_error_not_a_denial() -> None:
    with pytest.raises(UnknownPermission):
        is_allowed(["admin"], "customers:delete")


def matrix_in_docs() -> tuple[list[str], dict[str, frozenset[str]]]:
    """The roles (column order) and the permission rows of the table in docs/roles.md."""
    lines = ROLES_DOC.read_text().splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("| permission"))
    roles = [cell.strip() for cell in lines[header_at].strip("|").split("|")[1:]]
    documented: dict[str, frozenset[str]] = {}
    for line in lines[header_at + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        documented[cells[0].strip("`")] = frozenset(
            role for role, cell in zip(roles, cells[1:], strict=True) if cell == "✓"
        )
    return roles, documented


def test_docs_roles_table_matches_the_matrix() -> None:
    roles, documented = matrix_in_docs()

    assert roles == [role.value for role in Role]
    assert documented == {
        name: frozenset(role.value for role in allowed) for name, allowed in PERMISSIONS.items()
    }
