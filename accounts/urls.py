from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import path

from .language import set_language
from .password import PasswordChangeView
from .people_views import new_password, people, set_active

urlpatterns = [
    path("login/", login_not_required(auth_views.LoginView.as_view()), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", set_language, name="set_language"),
    path("password/", PasswordChangeView.as_view(), name="password_change"),
    path("people/", people, name="people"),
    path("people/<int:pk>/password/", new_password, name="people_password"),
    path("people/<int:pk>/active/", set_active, name="people_active"),
]
