from django.urls import path

from boardsite.notifications import views

urlpatterns = [
    path("notifications/preferences/", views.preferences, name="notification-preferences"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
