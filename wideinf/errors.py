"""Exceptions that the command line turns into one readable line and exit code 2."""


class WideinfError(Exception):
    """Base class for every error wideinf reports to a user without a traceback."""


class ConfigError(WideinfError):
    """A config file, option or array that cannot be used as given."""


class NumericalError(WideinfError):
    """A computation that cannot be carried out accurately (e.g. an ill-conditioned kernel)."""


class ResourceError(WideinfError):
    """A request that would need more memory than this machine has."""
