"""relay: a queue-backed webhook relay.

Producers post events to the web process, which validates and stores them in
Redis and enqueues them; workers fan each event out to every subscribed
webhook and deliver it, with retries and dead letters.
"""

__version__ = "0.1.0"
