"""A job that does nothing: the raw-RQ baseline for bench/throughput.py."""


def noop() -> None:
    """Do nothing."""
    return None
