"""The Celery app, configured from our settings. Each non-default setting says why."""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps

from clonequeue.config import Settings
from clonequeue.config.redis_urls import is_sentinel_url
from clonequeue.dispatch import fetch_order
from clonequeue.dispatch.delayed import is_rabbitmq_url
from clonequeue.dispatch.queues import QueueNames, broker_queue
from clonequeue.dispatch.scheduled import ScheduledMover, uses_scheduled_delay
from clonequeue.workers.presence_step import PresenceStep

# Longer than kombu's 1 s BRPOP, far shorter than anyone waits for a failover.
BROKER_SOCKET_TIMEOUT_S = 10.0


def create_app(settings: Settings) -> Celery:
    """A Celery app for ``settings`` with clonequeue's tasks registered."""
    from clonequeue.outputs import tasks as results_tasks
    from clonequeue.redaction import register_secrets
    from clonequeue.store.clock import FleetClock
    from clonequeue.store.connect import store_client
    from clonequeue.workers import beat_child, kombu_fixes
    from clonequeue.workers.events import RedactingEvents
    from clonequeue.workers.fleet_time import use_fleet_clock
    from clonequeue.workers.tasks import register_tasks

    kombu_fixes.apply()
    beat_child.install()
    register_secrets(settings.secret_values())
    queues = QueueNames.for_namespace(settings.namespace)
    results_queues = results_tasks.queue_names(settings.namespace)
    rabbitmq = is_rabbitmq_url(settings.effective_broker_url)
    # Task events (Flower) carry exception text and tracebacks: secrets are masked in them.
    app = Celery("clonequeue", set_as_current=False, events=RedactingEvents)
    # One clock for the fleet: ETAs and expiry times in Redis's time (fleet_time.py).
    use_fleet_clock(app, FleetClock(store_client(settings)))
    app.conf.update(
        broker_url=settings.effective_broker_url,
        # Celery results expire and are not our store: job results live in our own
        # records. Nothing is written per task (ignore_result).
        result_backend=settings.redis_url,
        result_backend_transport_options=sentinel_options(settings, settings.redis_url),
        task_ignore_result=True,
        # JSON only: messages carry ids, never pickled objects.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A message is acknowledged after its task ran, and re-delivered if the
        # worker died while running it. Our state checks make re-delivery harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One non-countdown message per thread: the submit backlog stays on the
        # broker, where other workers can take it.
        worker_prefetch_multiplier=1,
        # Countdown (ETA) messages are fetched at once and held in worker memory
        # (~11 KB each, celery #2218); past this many, the worker stops fetching
        # and the rest wait on the broker.
        worker_eta_task_limit=settings.eta_task_limit,
        broker_transport_options={
            # Redis broker: an unacked message comes back this long after it was
            # *fetched* (kombu #337). Countdowns stay below a fifth of it (polls
            # <= poll_interval_max_s, retries <= visibility/5; longer waits go
            # through the watchdog), so a waiting message is never delivered twice.
            # After a kill -9 the watchdog re-drives overdue steps after
            # watchdog_grace_s, so recovery does not wait for this timeout.
            "visibility_timeout": settings.visibility_timeout_s,
            **redis_broker_options(settings),
        },
        # A demoted master answers READONLY (celery #7946): retry the channel error
        # like a lost connection instead of stopping the consumer.
        broker_channel_error_retry=True,
        # One exchange and routing key per queue: a message goes to one queue only.
        # RabbitMQ: quorum queues on topic exchanges (dispatch/queues.py).
        task_queues=[
            broker_queue(name, rabbitmq=rabbitmq)
            for name in (*queues.all, *results_queues.values())
        ],
        task_default_queue=queues.submit,
        **(rabbitmq_options() if rabbitmq else {}),
        task_create_missing_queues=False,
        # Task events feed Flower. The "sent" event would add a publish per message.
        worker_send_task_events=True,
        # Remote control and events per namespace: Flower and `clonequeue inspect` see
        # only this fleet's workers, even when several share one Redis.
        control_exchange=settings.namespace,
        event_exchange=f"{settings.namespace}.events",
        task_send_sent_event=False,
        worker_pool="threads",  # I/O bound; see bench/worker_pool.py for the measurement
        worker_concurrency=settings.worker_concurrency,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # The schedule is fixed intervals: no last-run times worth a file. Celery's default
        # kept them in a shelve file per namespace under /tmp, shared by every beat of
        # that namespace on the host (two fleets, or two `worker --beat`): dbm is not
        # safe for two writers (QA pass). In memory, each beat has its own.
        beat_scheduler="celery.beat:Scheduler",
        beat_schedule={
            "watchdog": {
                "task": "clonequeue.watchdog",
                "schedule": settings.watchdog_interval_s,
                # Its own queue, which every worker consumes: no backlog of steps delays
                # it, so it needs no `expires` (that a backlog would make it miss).
                "options": {"queue": queues.watchdog},
            },
            # Webhooks and artifact copies from the events stream (clonequeue/outputs):
            # cheap, so it shares the watchdog's queue and no backlog delays it.
            "results": {
                "task": results_tasks.RESULTS_PASS,
                "schedule": settings.results_interval_s,
                # a missed pass is harmless (the next does its work): none pile up
                "options": {"queue": queues.watchdog, "expires": 5 * settings.results_interval_s},
            },
        },
    )
    if uses_scheduled_delay(app):
        app.steps["worker"].add(ScheduledMoverStep)
    app.steps["worker"].add(PresenceStep)  # `status` tells "no worker running" (presence.py)
    app.clonequeue_settings = settings
    app.clonequeue_queues = queues
    app.clonequeue_tasks = register_tasks(app, settings, queues)
    app.clonequeue_results_queues = results_queues
    results_tasks.register_results_tasks(app, settings)
    return app


class ScheduledMoverStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Every worker moves due countdown messages onto their lists (dispatch/scheduled.py).

    All of the app's queues, not only the ones this worker consumes: a countdown never
    waits for a worker of its own queue to be running.
    """

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.mover: ScheduledMover | None = None

    def start(self, worker: Any) -> None:
        app = worker.app
        names = [queue.name for queue in app.amqp.queues.values()]
        self.mover = ScheduledMover(app.connection_for_write, names)
        self.mover.start()

    def stop(self, worker: Any) -> None:
        if self.mover is not None:
            self.mover.stop()


def rabbitmq_options() -> dict[str, Any]:
    """Quorum queues with native delayed delivery (clonequeue/dispatch/delayed.py).

    A countdown waits on the broker in the ``celery_delayed_*`` levels, not in a
    worker's memory, so no visibility timeout or ``consumer_timeout`` applies to it.
    Quorum queues have no global QoS: Celery detects them and sets the prefetch per
    consumer (``worker_prefetch_multiplier`` × concurrency on each queue), which stays
    fixed — nothing needs it to grow, since countdowns no longer arrive early.
    """
    return {
        "task_default_queue_type": "quorum",
        "task_default_exchange_type": "topic",
        "broker_native_delayed_delivery_queue_type": "quorum",
        "worker_detect_quorum_queues": True,
    }


def redis_broker_options(settings: Settings) -> dict[str, Any]:
    """Socket limits for a Redis broker, and the Sentinel options for a Sentinel one.

    Without a socket timeout, a worker blocked reading from a master whose host went
    away (no RST, e.g. a cut link) waits forever and never reconnects (celery
    #6348/#10096); with one it notices within seconds and asks the sentinels again.
    """
    url = settings.effective_broker_url
    if not (url.startswith(("redis", "rediss")) or is_sentinel_url(url)):
        return {}
    return {
        # audio creates get two fetches to a poll's one (dispatch/fetch_order.py)
        "queue_order_strategy": fetch_order.STRATEGY,
        "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        **sentinel_options(settings, url),
    }


def sentinel_options(settings: Settings, url: str) -> dict[str, Any]:
    """kombu's Sentinel transport options (``master_name``, the sentinels' login)."""
    if not is_sentinel_url(url):
        return {}
    options: dict[str, Any] = {"master_name": settings.sentinel_master}
    kwargs: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if settings.sentinel_password is not None:
        kwargs["password"] = settings.sentinel_password.get_secret_value()
    options["sentinel_kwargs"] = kwargs
    return options


def app_settings(app: Any) -> Settings:
    settings: Settings = app.clonequeue_settings
    return settings
