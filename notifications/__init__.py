"""Notifications: ``from notifications import notify`` (or ``from notifications.send import notify``).

Loaded on first use, not here: this package is imported while Django loads its apps, before models may be.
"""


def __getattr__(name: str):
    if name == "notify":
        from .send import notify

        return notify
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
