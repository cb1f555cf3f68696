"""What happens to photos that other apps may care about, announced here so that images never imports them.

Each is sent by the service that makes the change, inside its transaction and only on the transition itself (a
duplicate result, a second sweep or a retried request finds the row already moved on and sends nothing), so a receiver
that writes rows writes them in the same transaction: a rolled-back change leaves nothing behind. ``notifications``
connects its receivers in its AppConfig.ready().
"""

from django.dispatch import Signal

# ``image`` just became ready. Keyword argument: image.
photo_ready = Signal()
# ``image`` just ended failed, with ``reason`` for its uploader. Not sent when the uploader abandons an upload in the
# browser (``image_upload_abandon``): they saw it fail there. Keyword arguments: image, reason.
upload_failed = Signal()
# ``sweep_uploads`` is running (``sweep.image_sweep_stale``), before it does the storage deletions that are due: apps
# above that keep uploads of their own (profile pictures) settle theirs. Keyword arguments: now, counts (a dict the
# receiver may add its counts to).
sweeping = Signal()
