"""The one exception type for input a user can fix; command lines turn it into exit status 2."""


class ConfigError(ValueError):
    """Bad user input: the message is one line that says what was wrong and what is allowed."""
