"""URLs of volume operations: create, clone, resize, delete, wipe."""

urlpatterns: list = []
