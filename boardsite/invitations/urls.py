from django.urls import path

from boardsite.invitations import views

urlpatterns = [
    path("boards/<int:pk>/invitations/", views.invitation_create, name="invitation-create"),
    path("boards/<int:pk>/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation-revoke"),
    path("invitations/", views.invitations_received, name="invitations-received"),
    path("invitations/<int:invitation_id>/accept/", views.invitation_accept_received, name="invitation-accept"),
    path("invitations/<str:token>/", views.invitation_open, name="invitation-open"),
]
