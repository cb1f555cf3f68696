"""One module per job, each with a plain ``handler(event, context)`` over AWS event shapes."""
