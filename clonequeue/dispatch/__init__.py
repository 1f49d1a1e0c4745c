"""The dispatch layer: every outstanding message of a step, and how it is sent.

Producers, workers, the watchdog and the CLI all send messages through here, and none
of them imports another:

- ``messages``: the shape of each message (task name, ids-only arguments, queue);
- ``dispatcher``: the :class:`Dispatcher` protocol and the Celery implementation;
- ``due``: the due-index, the record of every message that should run;
- ``queues``: the broker queues; ``broker``: their depths;
- ``bounds``: the published recovery bound and the timeouts it is made of.
"""
