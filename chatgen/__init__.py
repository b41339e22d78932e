"""chatgen: a conversational image chat-editing assistant on one joint text+image transformer."""

from .assistant import Assistant, Reply
from .backends import load_backend
from .params import GenerationParams
from .conversation import Message, Session, Turn
from .errors import ChatgenError
from .vocab import JointVocab

__all__ = ["Assistant", "ChatgenError", "GenerationParams", "JointVocab", "Message", "Reply", "Session", "Turn", "load_backend"]
__version__ = "0.1.0"
