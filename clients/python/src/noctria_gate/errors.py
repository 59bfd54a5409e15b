"""Errors that cross the library's boundary."""


class InvalidRecord(ValueError):
    """A record from one of the guard's topics that the gate cannot use: not JSON, a
    missing required field or a field of the wrong type. The gate's state is unchanged;
    the gate counts it (``invalid_records``)."""
