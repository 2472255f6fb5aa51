"""Every default in one place, each with the reason it has its value.

Settings read from the environment (see :mod:`relay.config`) fall back to
these. Times are in seconds unless a name says otherwise.
"""

#: Where Redis is when ``REDIS_URL`` is unset and no embedded server runs.
REDIS_URL = "redis://127.0.0.1:6379/0"

#: Prefix of every key relay writes, so that relay can share a database.
KEY_PREFIX = "relay:"

#: Largest request body accepted (256 KiB): helpdesk payloads are a few KiB,
#: and a bound keeps one producer from filling memory or Redis.
MAX_BODY_BYTES = 256 * 1024

#: How long a repeated post with the same idempotency key answers with the
#: first event instead of making a new one (24 h, as Stripe does).
IDEMPOTENCY_TTL = 24 * 3600

#: How long stored events are kept for replay (7 days).
EVENT_RETENTION = 7 * 24 * 3600

#: Redis socket timeouts for the web process: an intake that cannot reach
#: Redis quickly answers 503 instead of holding the producer.
REDIS_CONNECT_TIMEOUT = 1.0
REDIS_SOCKET_TIMEOUT = 2.0

#: ``Retry-After`` sent with a 503 when Redis is unavailable.
UNAVAILABLE_RETRY_AFTER = 2

#: Page size of list endpoints, and the most a client may ask for.
PAGE_SIZE = 50
PAGE_SIZE_MAX = 200

#: Longest webhook URL accepted (the common practical limit of browsers and
#: proxies).
URL_MAX_LENGTH = 2048

#: Longest webhook description accepted.
DESCRIPTION_MAX_LENGTH = 500

#: Timeout of one delivery attempt, start to last byte (15 s, as GitHub does
#: for its hooks' responses).
DELIVERY_TIMEOUT = 15.0

#: Seconds between attempts: eight attempts over about 27 hours.
RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)

#: Each delay is spread by this fraction either way, so that retries of many
#: deliveries that failed together do not arrive together.
RETRY_JITTER = 0.2

#: The longest ``Retry-After`` honoured; a longer one is cut to this (1 h).
RETRY_AFTER_MAX = 3600

#: Bytes of a sink's response body kept with each attempt.
RESPONSE_EXCERPT_BYTES = 2048

#: Messages per second to one Slack incoming webhook, across all workers:
#: Slack allows about one per second per webhook.
SLACK_RATE = 1.0

#: Messages to one Slack webhook that may go out at once before the rate
#: applies. One: Slack tolerates short bursts but promises nothing for them.
SLACK_BURST = 1

#: The sender of email deliveries when ``RELAY_MAIL_FROM`` is unset; set a
#: real address, as many servers refuse mail from a ``localhost`` domain.
MAIL_FROM = "relay@localhost"

#: SMTP ports when ``RELAY_SMTP_URL`` names none: submission with STARTTLS
#: (587) when it has credentials, plain SMTP (25) without, and implicit TLS
#: (465) for ``smtps://``.
SMTP_PORT = 25
SMTP_SUBMISSION_PORT = 587
SMTPS_PORT = 465

#: Concurrent attempts per worker process.
WORKER_CONCURRENCY = 32

#: Concurrent attempts to one webhook per worker process, so that one slow
#: sink cannot take every slot of a worker.
WEBHOOK_CONCURRENCY = 8

#: Work items a worker reads from the stream at once.
WORKER_BATCH = 64

#: An item taken by a worker that stopped answering is taken over by another
#: worker after this long (well above the longest attempt).
RECOVERY_AFTER = 60.0

#: After a secret rotation, how long deliveries also carry a signature made
#: with the old secret (24 h, the Standard Webhooks way to rotate).
SECRET_OVERLAP = 24 * 3600

#: Failures in a row that open a webhook's breaker: attempts then wait
#: instead of each burning its own schedule.
BREAKER_THRESHOLD = 5

#: How long an open breaker waits before one attempt probes the receiver;
#: each failed probe doubles it, up to the longest pause.
BREAKER_PAUSE = 30.0
BREAKER_PAUSE_MAX = 900.0

#: A webhook that has failed without a single success for this long (5
#: days) is disabled, as Stripe and GitHub do with endpoints that stay down.
DISABLE_AFTER = 5 * 24 * 3600

#: ...and only when at least this many attempts failed over that time, so
#: one failure long ago followed by silence does not disable it.
DISABLE_MIN_FAILURES = 5

#: Seconds an alert to ``RELAY_ALERT_URL`` may take.
ALERT_TIMEOUT = 5.0

#: Port of the web process when ``PORT`` is unset.
PORT = 8000

#: Folder of the embedded Valkey's data under ``relay dev``.
DEV_DATA_DIR = ".relay"

#: Log level when ``RELAY_LOG_LEVEL`` is unset: one line per received event
#: and per attempt is INFO.
LOG_LEVEL = "INFO"

#: Pending deliveries read (oldest first) when ``/metrics`` works out the age
#: of the oldest pending delivery per webhook: bounded, since pending can be
#: large, and the oldest are the ones an alert is about.
OLDEST_PENDING_SAMPLE = 1000
