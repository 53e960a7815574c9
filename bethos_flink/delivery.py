"""Buffered delivery of the merger's emissions, shared by `state_store` (store writes) and
`inline` (batches).

A flush fires one timer per VIN, so batching needs a buffer across timers. The buffer is keyed
list state (keyed by `delivery_bucket`), so a checkpoint or savepoint carries what is not yet
delivered, and a failed delivery keeps it and retries: nothing is lost between the merge and the
sink. What to deliver and when is `bethos.strategies.flushing.DeliveryPlan`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from bethos.exceptions import StoreError
from bethos.logevents import log_event
from bethos.strategies.flushing import DeliveryPlan, Pending
from bethos_flink.environment import ensure_logging
from bethos_flink.merge_function import COMPONENT, log


class BufferedDelivery(KeyedProcessFunction):  # type: ignore[misc]
    """Keeps (vin, value) rows in list state; delivers them when `batch_size` are buffered or
    `linger` after the first one. A failed delivery is logged (`flush_error`) and retried with
    backoff, the rows kept."""

    def __init__(self, plan: DeliveryPlan) -> None:
        self.plan = plan

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        self.buffer = runtime_context.get_list_state(
            ListStateDescriptor("buffer", Types.PICKLED_BYTE_ARRAY())
        )
        self.buffered = runtime_context.get_state(ValueStateDescriptor("buffered", Types.INT()))
        self.failures = runtime_context.get_state(ValueStateDescriptor("failures", Types.INT()))
        metrics = runtime_context.get_metrics_group()
        self.delivered = metrics.counter("delivered")
        self.flush_errors = metrics.counter("flush_errors")
        self.rng = random.Random()

    def deliver(self, bucket: int, entries: Sequence[Pending]) -> list[Row]:
        """Deliver the bucket's pending entries; return rows to emit downstream. Raise
        `StoreError` or `OSError` to keep them and retry later."""
        raise NotImplementedError

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        vin, text = value[0], value[1]
        self.buffer.add((vin, None if text is None else text.encode()))
        count = (self.buffered.value() or 0) + 1
        self.buffered.update(count)
        if self.plan.full(count) and not self.failures.value():
            yield from self._flush(ctx)
        elif count == 1:
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(now + self.plan.linger_ms)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        if self.buffered.value():
            yield from self._flush(ctx)

    def _flush(self, ctx: Any):  # type: ignore[no-untyped-def]
        entries = self.plan.pending(self.buffer.get() or [])
        try:
            rows = self.deliver(ctx.get_current_key(), entries)
        except (StoreError, OSError) as exc:
            failures = (self.failures.value() or 0) + 1
            self.failures.update(failures)
            self.flush_errors.inc()
            retry_in = self.plan.retry_in(failures, self.rng)
            log_event(
                log,
                COMPONENT,
                "flush_error",
                logging.ERROR,
                err=str(exc),
                vin_count=len(entries),
                attempt=failures,
                retry_in_ms=retry_in,
            )
            self.buffer.update(entries)
            self.buffered.update(len(entries))
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(now + retry_in)
            return
        self.buffer.clear()
        self.buffered.clear()
        self.failures.clear()
        self.delivered.inc(len(entries))
        yield from rows
