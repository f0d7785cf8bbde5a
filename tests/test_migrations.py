"""The migrations are complete and apply from nothing, on whichever database the run uses (make test: the whole
suite on PostgreSQL, the smoke set again on SQLite)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.smoke


@pytest.mark.django_db  # makemigrations checks the applied history against the files
def test_no_model_change_lacks_a_migration() -> None:
    with pytest.raises(SystemExit) as exited:  # --check exits non-zero when a migration is missing
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
        raise SystemExit(0)
    assert exited.value.code == 0


@pytest.mark.django_db(transaction=True)
def test_every_migration_unapplies_and_applies_again() -> None:
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    applied = MigrationRecorder(connection).applied_migrations()
    call_command("migrate", "provisioning", "zero", verbosity=0)
    assert not any(app == "provisioning" for app, _ in MigrationRecorder(connection).applied_migrations())
    call_command("migrate", verbosity=0)
    assert MigrationRecorder(connection).applied_migrations().keys() == applied.keys()
