"""What happens to boards that apps above this one may care about, announced here so that boards never imports them.

Sent inside the service's transaction, so whatever a receiver writes is rolled back with the change that caused it.
"""

from django.dispatch import Signal

# ``member`` was just added to ``board`` by ``actor`` with ``role`` (a new membership only: a changed role is not
# news). Keyword arguments: board, member, role, actor. ``notifications`` tells the new member.
member_added = Signal()
# ``board`` is about to be deleted, inside the deleting transaction (its photos are still there to be counted).
# Keyword argument: board. ``images`` schedules the deletion of the board's stored objects.
board_deleting = Signal()
# ``member`` may no longer add photos to ``board`` (removed, or lowered to viewer). Keyword arguments: board, member.
# ``images`` ends their upload grants for that board (the ticket function must not issue them more tickets).
member_removed = Signal()
# An owner (``actor``) offered ``board`` to ``member``, who must accept it. Keyword arguments: board, member, actor.
# ``notifications`` tells the member.
ownership_offered = Signal()
# ``member`` is no longer an owner of ``board`` (removed, left, lowered, or handed the board over). Keyword
# arguments: board, member. ``invitations`` withdraws the invitations they made there (what an owner started ends
# with their right to start it).
owner_stepped_down = Signal()
