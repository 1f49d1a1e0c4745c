"""The JimmyAI SoundClone API: typed requests, the rules they obey, billing, the client."""

from clonequeue.api.billing import CostEstimate, billed_chars, preview_chars
from clonequeue.api.client import ApiClient
from clonequeue.api.models import AudioRequest, AudioSpec, CloneRequest, RemoteTask, TaskStatus

__all__ = [
    "ApiClient",
    "AudioRequest",
    "AudioSpec",
    "CloneRequest",
    "CostEstimate",
    "RemoteTask",
    "TaskStatus",
    "billed_chars",
    "preview_chars",
]
