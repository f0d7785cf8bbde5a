"""Keeping a row in place while a transaction writes rows that refer to it.

On PostgreSQL Django's foreign keys are checked at commit. A row written while another transaction removes
its parent fails only there, with an IntegrityError that names no cause; or the parent's removal fails,
because its cascade ran before the new row was committed. So a writer holds the parent first (hold()) and a
remover locks it first (for_update()): whichever comes second waits, then sees what the first did.

Both lock the rows asked for and no others. A model's default ordering (a pool's is by its host's name) or a
select_related joins other tables, and a plain FOR UPDATE (or FOR KEY SHARE) locks the joined rows too: a launch
then held its pool's host row, and deadlocked with a sync that had written the host and waited for the pool
(the load test on PostgreSQL, three upload jobs failed).
"""

from __future__ import annotations

from typing import TypeVar

from django.db import connection
from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


def hold(instance: Model) -> bool:
    """Keep instance's row from being deleted until this transaction ends; False when it is gone already.

    Call inside transaction.atomic(). On PostgreSQL this is a FOR KEY SHARE lock: it waits for a remover that
    locked the row first and holds up only removers, never other writers. SQLite needs no lock: its transactions
    here begin IMMEDIATE, one writer at a time, so the row's presence is the answer."""
    rows = type(instance)._default_manager.filter(pk=instance.pk).order_by().values("pk")  # no join: this row only
    if connection.vendor != "postgresql":
        return rows.exists()
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR KEY SHARE", params)
        return cursor.fetchone() is not None


def held(instance: M | None) -> M | None:
    """instance, held as hold() holds it; None when there is none or it is gone."""
    return instance if instance is not None and hold(instance) else None


def for_update(rows: QuerySet[M]) -> QuerySet[M]:
    """rows, to be locked FOR UPDATE (in a transaction): these rows only, whatever the query joins."""
    return rows.select_for_update(of=("self",))
