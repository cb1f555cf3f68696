from django.contrib.auth import views as auth_views
from django.urls import include, path

from boardsite.accounts import views as accounts
from boardsite.api import views as api
from boardsite.avatars import views as avatars
from boardsite.boards import views as boards
from boardsite.core import views as core
from boardsite.images import board_pages
from boardsite.images import views as images

urlpatterns = [
    path("", board_pages.home, name="home"),
    path(core.HEALTH_PATH, core.health, name="health"),
    path("signup/", accounts.signup, name="signup"),
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("profile/", accounts.profile, name="profile"),
    path("profile/email/", accounts.email_change, name="email-change"),
    path("profile/avatar/", avatars.avatar_upload, name="avatar-upload"),
    path("profile/avatar/remove/", avatars.avatar_remove, name="avatar-remove"),
    path("profile/tokens/", accounts.token_create, name="token-create"),
    path("profile/tokens/<int:pk>/revoke/", accounts.token_revoke, name="token-revoke"),
    path("email/confirm/<str:token>/", accounts.email_confirm, name="email-confirm"),
    path("email/undo/<str:token>/", accounts.email_undo, name="email-undo"),
    path("password/change/", accounts.PasswordChangeView.as_view(), name="password-change"),
    path("password/reset/", accounts.PasswordResetView.as_view(), name="password-reset"),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password-reset-done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        accounts.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path(
        "password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password-reset-complete",
    ),
    path("boards/new/", boards.board_create, name="board-create"),
    path("boards/mine/", board_pages.board_list, {"which": "mine"}, name="boards-mine"),
    path("boards/shared/", board_pages.board_list, {"which": "shared"}, name="boards-shared"),
    path("boards/public/", board_pages.board_list, {"which": "public"}, name="boards-public"),
    path("boards/<int:pk>/", board_pages.board_detail, name="board-detail"),
    path("boards/<int:pk>/tiles", board_pages.board_tiles, name="board-tiles"),
    path("boards/<int:pk>/photos/", board_pages.board_photos, name="board-photos"),
    path("batches/<uuid:batch_id>/undo/", board_pages.batch_undo, name="batch-undo"),
    path("api/boards/<int:pk>/photos", board_pages.api_board_photos, name="api-board-photos"),
    path("api/batches/<uuid:batch_id>/undo", board_pages.api_batch_undo, name="api-batch-undo"),
    path("api/batches/<uuid:batch_id>/finish", board_pages.api_batch_finish, name="api-batch-finish"),
    path("boards/<int:pk>/edit/", boards.board_edit, name="board-edit"),
    path("boards/<int:pk>/delete/", boards.board_delete, name="board-delete"),
    path("boards/<int:pk>/members/", boards.member_add, name="member-add"),
    path("boards/<int:pk>/members/remove/", boards.member_remove, name="member-remove"),
    path("boards/<int:pk>/leave/", boards.board_leave, name="board-leave"),
    path("boards/<int:pk>/ownership/offer/", boards.ownership_offer, name="ownership-offer"),
    path("boards/<int:pk>/ownership/answer/", boards.ownership_answer, name="ownership-answer"),
    path("images/<uuid:pk>/", images.image_detail, name="image-detail"),
    path("images/<uuid:pk>/delete/", images.image_delete, name="image-delete"),
    path("images/<uuid:pk>/original", images.image_original, name="image-original"),
    # The JSON upload API (README, "Upload API").
    path("api/uploads", images.api_uploads, name="api-uploads"),
    path("api/upload-grants", images.api_upload_grants, name="api-upload-grants"),
    path("api/avatar", avatars.api_avatar, name="api-avatar"),
    path("api/avatar/<str:pk>/complete", avatars.api_avatar_complete, name="api-avatar-complete"),
    path("api/avatar/<str:pk>/abandon", avatars.api_avatar_abandon, name="api-avatar-abandon"),
    path("api/me", api.me, name="api-me"),
    path("api/boards", api.boards, name="api-boards"),
    path("api/boards/<int:pk>/images", api.board_images, name="api-board-images"),
    path("api/boards/<int:pk>/lookup", api.board_lookup, name="api-board-lookup"),
    path("api/images/<str:pk>/download", api.image_download, name="api-image-download"),
    path("api/openapi.json", api.openapi_document, name="api-openapi"),
    path("api/images", images.api_images, name="api-images"),
    path("api/images/<str:pk>", images.api_image, name="api-image"),
    path("api/images/<str:pk>/complete", images.api_image_complete, name="api-image-complete"),
    path("api/images/<str:pk>/abandon", images.api_image_abandon, name="api-image-abandon"),
    path("", include("boardsite.mail.urls")),
    path("", include("boardsite.invitations.urls")),
    path("", include("boardsite.notifications.urls")),
    path("", include("boardsite.control.urls")),
]
