"""Fixed facts in one place: the provider's API, billing rules, and our names.

Tunable values live in :mod:`clonequeue.config`; what is here never changes at
run time. Units are in the names.
"""

from __future__ import annotations

from typing import Final

# --- The JimmyAI SoundClone API (../shared/jimmyai-api.md) -------------------
DEFAULT_API_BASE_URL: Final = "https://www.jimmyai.cn"
CLONE_PATH: Final = "/api/open-api/v1/soundCloning/clones"
AUDIO_PATH: Final = "/api/open-api/v1/soundCloning/audios"
TASK_PATH_PREFIX: Final = "/api/open-api/v1/audios/"
SUCCESS_CODE: Final = 20000

AUDIO_EXTENSIONS: Final = frozenset({"mp3", "ogg", "wav", "m4a", "aac"})
VIDEO_EXTENSIONS: Final = frozenset({"mp4", "avi", "mov", "mkv", "flv"})
SOUND_VERSIONS: Final = ("v1", "v2")
EMOTIONS: Final = ("happy", "sad", "angry", "fearful", "disgusted", "surprised", "neutral")
SUBTITLE_TYPES: Final = ("word",)

PREVIEW_TEXT_MAX_CHARS: Final = 270
AUDIO_TEXT_MAX_CHARS: Final = 10_000
PAUSE_MIN_S: Final = 0.01
PAUSE_MAX_S: Final = 99.99
SPEED_MIN: Final = 0.5
SPEED_MAX: Final = 2.0
VOL_MAX: Final = 10.0  # vol is in (0, VOL_MAX]
PITCH_MIN: Final = -12
PITCH_MAX: Final = 12
MAX_AUDIOS_PER_JOB: Final = 100  # not documented by the provider; guards against runaway rows

# A modelId stays usable this long after its clone completes, unless a
# production audio was created with it before then (which activates it).
MODEL_ID_TTL_S: Final = 3 * 24 * 3600

# --- Billing ------------------------------------------------------------------
BILLING_UNIT_CHARS: Final = 10_000
# The provider bills its own default preview line when contentText is omitted.
# The reference does not print that line; this is our stand-in for estimates
# (the simulator uses the same text, so estimates and its ledger agree).
DEFAULT_PREVIEW_TEXT: Final = (
    "Hello! This is a preview of my cloned voice. How does it sound to you today?"
)

# --- Our names in Redis and on the broker -------------------------------------
DEFAULT_NAMESPACE: Final = "clonequeue"
SUBMIT_CLONE: Final = "clonequeue.submit_clone"
CREATE_AUDIO: Final = "clonequeue.create_audio"
POLL_CLONE: Final = "clonequeue.poll_clone"
POLL_AUDIO: Final = "clonequeue.poll_audio"
WATCHDOG: Final = "clonequeue.watchdog"

# A Redis command is retried for about this long before it fails: longer than a
# restart of a Redis with an AOF of a few GB takes to answer again.
REDIS_RIDE_OUT_S: Final = 30.0
