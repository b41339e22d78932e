"""The one error type a person sees: a single sentence naming the problem, never a traceback."""

MAX_ERROR_CHARS = 400  # an error longer than this (it quotes something huge) is cut


class ChatgenError(ValueError):
    """Bad input or a missing resource. Front ends print `str(err)` and keep the session as it was.

    The message is kept to one line whatever it quotes (a file name or text with line breaks)."""

    def __init__(self, message: object = ""):
        text = " ".join(str(message).split())
        super().__init__(text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…")
