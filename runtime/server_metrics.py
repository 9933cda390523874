"""Prometheus metrics of `modmt serve` (GET /metrics), in a registry of the app's own.

Requests and sentences per direction, the target-language guard's verdicts, refusals, request latency per direction (a histogram),
decoding steps with their duration and rows, and the queue and rows in flight as gauges read when
scraped.
"""
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (the /metrics response's type)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class ServerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("modmt_requests", "Requests answered, by direction and status code",
                                ["source", "target", "code"], registry=r)
        self.sentences = Counter("modmt_sentences", "Sentences (pieces) translated, by direction",
                                 ["source", "target"], registry=r)
        self.guard = Counter("modmt_guard_sentences", "Sentences the target-language guard judged, by direction and "
                             "verdict: on-target, guarded (a lower hypothesis in the target language answered), "
                             "off-target (none was), unsure (too short or unknown to tell)",
                             ["source", "target", "verdict"], registry=r)
        self.latency = Histogram("modmt_request_seconds", "Time from a request's arrival to its answer",
                                 ["source", "target"], buckets=LATENCY_BUCKETS, registry=r)
        self.steps = Histogram("modmt_step_seconds", "Duration of one decoding step of one running batch",
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r)
        self.prefills = Histogram("modmt_prefill_seconds", "Duration of one prefill of newly admitted sentences",
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r)
        self.step_rows = Histogram("modmt_step_sentences", "Sentences in a running batch at a decoding step",
                                   buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.queue = Gauge("modmt_queue_sentences", "Sentences queued or decoding", registry=r)
        self.in_flight = Gauge("modmt_in_flight_sentences", "Sentences in running batches", registry=r)
        self.batches = Gauge("modmt_running_batches", "Running batches", registry=r)

    def watch(self, batcher) -> None:
        """Gauges read from the batcher when scraped."""
        self.queue.set_function(lambda: batcher.pending)
        self.in_flight.set_function(lambda: batcher.in_flight)
        self.batches.set_function(lambda: len(batcher.batches))

    def step(self, seconds: float, sentences: int) -> None:
        self.steps.observe(seconds)
        self.step_rows.observe(sentences)

    def prefill(self, seconds: float) -> None:
        self.prefills.observe(seconds)

    def sentence(self, direction: tuple) -> None:
        self.sentences.labels(*direction).inc()

    def guarded(self, direction: tuple, verdict: str) -> None:
        self.guard.labels(*direction, verdict).inc()

    def request(self, direction: tuple, code: int, seconds: float | None) -> None:
        self.requests.labels(*direction, str(code)).inc()
        if seconds is not None:
            self.latency.labels(*direction).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
