"""The test database is emptied after each transactional test (conftest._flush_by_delete on PostgreSQL): rows
linked by foreign keys go, whatever order the tables are listed in."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def _rows() -> dict[str, int]:
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def test_the_flush_empties_every_table_of_linked_rows(member, local_host):
    from jobs.models import Job

    Job.objects.create(kind="upload", host=local_host, created_by=member)
    before = _rows()
    assert {t for t, n in before.items() if n} >= {"auth_user", "hosts_host", "jobs_job"}, before
    call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=True)
    assert not {t: n for t, n in _rows().items() if n}
