"""URLs of uploads and downloads."""

urlpatterns: list = []
