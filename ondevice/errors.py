"""User-facing failures. Each is one clear line; the CLI maps them to exit code 2, the server to an HTTP status.

Anything that is *not* an `OnDeviceError` is a bug in ondevice and keeps its traceback.
"""

from __future__ import annotations


class OnDeviceError(Exception):
    """Base of every error a user can cause and fix (bad path, bad file, bad option)."""

    http_status = 400
    code = "invalid_request"


class ModelNotFound(OnDeviceError):
    """A model name is neither a known alias nor an existing path."""

    http_status = 404
    code = "model_not_found"


class InvalidModelFile(OnDeviceError):
    """A model file exists but is not a valid model of the format it claims (bad magic, truncated, ...)."""

    code = "invalid_model_file"


class ContextOverflow(OnDeviceError):
    """The prompt (plus requested tokens) does not fit in the model's context window."""

    code = "context_length_exceeded"


class UnsupportedOperation(OnDeviceError):
    """The model or backend cannot do what was asked (e.g. embeddings from a chat-only model)."""

    code = "unsupported"


class BackendUnavailable(OnDeviceError):
    """The runtime a model needs is not installed, or a requested device/backend name is unknown."""

    code = "backend_unavailable"


class InvalidInput(OnDeviceError):
    """A bad argument: empty messages, an impossible option value, an unreadable input file."""

    code = "invalid_input"


class RemoteUnavailable(OnDeviceError):
    """A remote model server could not be reached, timed out, or kept failing after retries."""

    http_status = 502
    code = "remote_unavailable"


class InvalidSession(OnDeviceError):
    """A saved chat session cannot be used: another model or setting, or a truncated or corrupt file."""

    code = "invalid_session"
