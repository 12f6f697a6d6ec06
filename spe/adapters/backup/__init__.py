"""``spe backup`` and ``spe restore``: a consistent online copy of the service's state
(``archive``) and of its database (``database``)."""
