"""Transcription engines other than the default faster-whisper one (see :mod:`kdh_ai.tasks.transcription`)."""
