"""What invitations announces to apps above it (sent inside the inviting transaction)."""

from django.dispatch import Signal

# ``member``, an account whose confirmed address ``actor`` invited to ``board`` as ``role``, is not a member yet: they
# may accept at ``invitations-received``. Keyword arguments: board, member, role, actor. ``notifications`` lists it
# in the site (the invitation's own mail is its mail).
invited = Signal()
