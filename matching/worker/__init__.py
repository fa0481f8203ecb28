"""The matcher worker: the layer above the order domain that owns a market's book in a Celery worker.

``engine`` drains the stream, ``settlement`` (pure) turns matches into row and balance effects,
``writer`` commits them (``store``: one transaction a batch) and publishes, ``rebuild`` restores the
book at start-up, ``deadletters`` isolates poison, ``registry`` and ``tasks`` connect it to Celery.
"""
