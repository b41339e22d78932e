"""The one error type a person sees: a single sentence naming the problem, never a traceback."""


class ChatgenError(ValueError):
    """Bad input or a missing resource. Front ends print `str(err)` and keep the session as it was."""
