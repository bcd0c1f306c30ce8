"""Errors the pipeline reports to users as one clear line instead of a traceback."""


class MednCAError(Exception):
    """Base class for errors whose message is meant for the user as it stands."""


class DataError(MednCAError):
    """A dataset, case or file cannot be used; the message names the file or case and the problem."""


class ConfigError(MednCAError):
    """The configuration is invalid; the message names the key and the problem."""
