from django.conf import settings
from django.db import models

from boardsite.core.text import VisibleText


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(max_length=80, blank=True, validators=[VisibleText("display name")])
    bio = models.TextField(max_length=2000, blank=True, validators=[VisibleText("bio", multiline=True)])
    # The user's address is ``user.email``, but only once confirmed (``accounts.emails``): it is confirmed while
    # ``email_key`` is its lower-case form. Unique, so one account per confirmed address whatever its case.
    email_key = models.CharField(max_length=254, unique=True, null=True, blank=True, editable=False)
    email_confirmed_at = models.DateTimeField(null=True, blank=True)
    # An address asked for (sign-up or profile) and not yet confirmed by the link mailed to it.
    pending_email = models.EmailField(blank=True)
    # Bound into each confirmation link and bumped when one is mailed or used: a used or superseded link is refused.
    email_nonce = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.display_name or self.user.get_username()


class AddressUndo(models.Model):
    """A confirmed address that was replaced, and its right to take the account back until ``expires_at``
    (``accounts.emails.email_undo``): the random ``ref`` its undo link carries. Each replaced address gets one, so
    neither a second change nor the intruder's own use of a later one can shut an earlier address out: using one
    ends it and every later one, never an earlier one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="address_undos")
    address = models.EmailField()
    ref = models.CharField(max_length=32, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self) -> str:
        return f"undo for user {self.user_id} until {self.expires_at:%Y-%m-%d}"


class UsernameKey(models.Model):
    """The canonical form of a user's name (``usernames.canonical_username``) and what it looks like
    (``usernames.username_skeleton``); each unique, so one person per name and no name that looks like another's.

    Kept beside Django's ``auth.User`` (which compares names exactly) and in step with it on every save
    (``accounts.signals``), whatever path saves the user.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="username_key"
    )
    # TextField: NFKC can lengthen a 150-character name (one ligature becomes several letters).
    key = models.TextField(unique=True)
    skeleton = models.TextField(unique=True)

    def __str__(self) -> str:
        return self.key


class FormerUsername(models.Model):
    """A name a user had before it was changed because it looked like an earlier account's name (migrations 0003,
    0005) or held invisible characters (0005).

    That person can still log in with it and their own password (after the name's current holder is tried).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="former_usernames")
    name = models.CharField(max_length=150)
    key = models.TextField(db_index=True)
    renamed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class LoginLockout(models.Model):
    """How often a log-in key (an account's canonical name or a client address) was locked out: each lock-out lasts
    longer (``accounts.throttle``). django-axes counts the failures; this only remembers the lock-outs."""

    key = models.CharField(max_length=300, unique=True)  # "username:<canonical name>" or "ip:<address>"
    strikes = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key} x{self.strikes}"


class CacheEntry(models.Model):
    """The table of Django's database cache (``CACHES`` without ``CACHE_URL``), created by a migration so that no
    ``createcachetable`` step is needed; the columns are the ones ``createcachetable`` makes."""

    cache_key = models.CharField(max_length=255, primary_key=True)
    value = models.TextField()
    expires = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "boardsite_cache"

    def __str__(self) -> str:
        return self.cache_key


class AccessToken(models.Model):
    """A personal access token (``accounts.tokens``): for programs on the JSON API, with its owner's rights on each
    board at most, narrowed by its scopes. Only the SHA-256 of the token is kept; it is shown once, when made."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=80, validators=[VisibleText("token name")])
    digest = models.CharField(max_length=64, unique=True)  # sha256 of the whole token
    shown = models.CharField(max_length=16)  # its first characters, to tell tokens apart (``bst_AbCd1234``)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.shown}…)"


class Avatar(models.Model):
    """A person's profile picture: the one on show and the one upload in flight (one slot: one at a time).

    Here, at the bottom of the apps, so any page that shows a name fetches it in the same query
    (``select_related("user__avatar")``); the uploads and results that fill it are ``boardsite.avatars``'."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="avatar"
    )
    # On show: the processed variants (``[{"name", "format", "key", "width", "height"}, ...]``) of ``original_key``.
    original_key = models.CharField(max_length=300, blank=True)
    variants = models.JSONField(default=list, blank=True)
    # In flight: the ticket's avatar id and key, and whether its bytes were reported (processing) or not (pending).
    pending_id = models.UUIDField(null=True, blank=True)
    pending_key = models.CharField(max_length=300, blank=True)
    pending_state = models.CharField(max_length=12, blank=True)  # "", "pending", "processing"
    pending_started_at = models.DateTimeField(null=True, blank=True)
    pending_attempts = models.PositiveSmallIntegerField(default=0)  # processing starts, for the sweep's retries
    # Why the last upload was refused (shown on the profile page until the next one succeeds).
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"avatar of user {self.user_id}"
