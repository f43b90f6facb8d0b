"""The project's exception tree, split by who is at fault.

- `UserError`: the person at the keyboard or their configuration (a bad path, a broken config file,
  an unknown site). The message says what to change.
- `ModelError`: the language model produced something unusable (a malformed tool call).
  The agent may show it to the model once, then reports it.
- `ToolError`: a tool failed while running (a detector crashed, the database is locked).

Every message is one line, written for the person who has to act on it.
"""


class InspectorError(Exception):
    """Base of every error the project raises on purpose."""


class UserError(InspectorError):
    """Bad input or configuration from the user."""


class ConfigError(UserError):
    """A configuration file, model directory or option is missing or inconsistent."""


class ModelError(InspectorError):
    """The language model's output cannot be used."""


class MalformedToolCall(ModelError):
    """An assistant message looked like a tool call but does not parse as one."""


class ToolError(InspectorError):
    """A tool failed while running."""
