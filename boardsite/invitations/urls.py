from django.urls import path

from boardsite.invitations import views

urlpatterns = [
    path("boards/<int:pk>/invitations/", views.invitation_create, name="invitation-create"),
    path("boards/<int:pk>/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation-revoke"),
    path("invitations/<str:token>/", views.invitation_open, name="invitation-open"),
]
