"""Implementations behind :mod:`locality.functional`, chosen per device and shape in
``dispatch``."""
