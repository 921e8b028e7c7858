"""The broker side of one channel: consumers, delivery tags, unacked messages, qos,
publisher confirms and transactions; the `ChannelModel` of `broker.frontend`. Output goes
through the `Sink` the connection implements, so the broker never touches IO and never
imports the protocol layer.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from pamqp import commands

from amqpbroker import errors
from amqpbroker.broker.stats import MessageStats

if TYPE_CHECKING:
    from amqpbroker.broker.consumer import Consumer, ReplyConsumer
    from amqpbroker.broker.frontend import Sink
    from amqpbroker.broker.message import Entry, Message
    from amqpbroker.broker.queue import Queue
    from amqpbroker.broker.session import Session
    from amqpbroker.broker.timers import Timer


class Unacked:
    """A delivery awaiting its ack: where it came from, which consumer holds it, and when
    its acknowledgement times out (None: never)."""

    __slots__ = ("consumer", "deadline", "entry", "queue")

    def __init__(self, queue: Queue, entry: Entry, consumer: Consumer | None, *,
                 deadline: float | None = None) -> None:
        self.queue = queue
        self.entry = entry
        self.consumer = consumer
        self.deadline = deadline


class Channel:
    """One open channel of a session."""

    def __init__(self, session: Session, channel_id: int, sink: Sink) -> None:
        self.session = session
        self.id = channel_id
        self.sink = sink
        self.active = True
        self.consumers: dict[str, Consumer] = {}
        self.next_tag = 0
        self.unacked: OrderedDict[int, Unacked] = OrderedDict()
        # Unacked consumer deliveries, what global qos limits (basic.get ones are not).
        self.unacked_count = 0
        self.prefetch = 0
        self.consumer_prefetch = 0
        self.confirm = False
        self.publish_seq = 0
        self.confirmed_upto = 0
        self.confirm_pending = 0
        self.tx: list[tuple[str, Any]] | None = None
        self.last_queue = ""
        self.reply_consumer: ReplyConsumer | None = None
        self.reply_token = ""
        self._timeout_timer: Timer | None = None
        self.stats = MessageStats()

    # --- delivery --------------------------------------------------------------

    def deliver(self, consumer: Consumer, entry: Entry) -> None:
        """Send one message to a consumer of this channel (called by Queue.dispatch)."""
        self.next_tag += 1
        tag = self.next_tag
        stats, queue_stats = self.stats, consumer.queue.stats
        if entry.redelivered:
            stats.redeliver += 1
            queue_stats.redeliver += 1
        if not consumer.no_ack:
            stats.deliver += 1
            queue_stats.deliver += 1
            deadline = None
            if consumer.timeout is not None:
                timers = self.session.vhost.timers
                deadline = timers.now() + consumer.timeout
                if self._timeout_timer is None:
                    self._timeout_timer = timers.call_at(deadline, self._check_timeouts)
            self.unacked[tag] = Unacked(consumer.queue, entry, consumer, deadline=deadline)
            self.unacked_count += 1
            consumer.unacked += 1
        else:
            stats.deliver_no_ack += 1
            queue_stats.deliver_no_ack += 1
            consumer.queue.settle(entry)
        self._send_deliver(consumer, tag, entry)

    def deliver_reply(self, entry: Entry) -> None:
        """Send a direct reply-to message to this channel's reply consumer (no ack)."""
        consumer = self.reply_consumer
        assert consumer is not None
        self.next_tag += 1
        self._send_deliver(consumer, self.next_tag, entry)

    def _send_deliver(self, consumer: Consumer | ReplyConsumer, tag: int, entry: Entry) -> None:
        """Hand a delivery to this channel's connection. This runs on whichever
        connection's stack made the message deliverable: a failure here is this
        connection's alone, so it ends this connection and nothing else."""
        try:
            self.sink.send_deliver(self.id, consumer, tag, entry.redelivered, entry.message)
        except Exception:
            self.sink.internal_error()

    def _check_timeouts(self, now: float) -> None:
        """Consumer acknowledgement timeout: close the channel with 406, as RabbitMQ."""
        self._timeout_timer = None
        deadlines = [r.deadline for r in self.unacked.values() if r.deadline is not None]
        if not deadlines:
            return
        for record in self.unacked.values():
            if record.deadline is not None and record.deadline <= now:
                timeout = record.consumer.timeout if record.consumer else None
                self.sink.close_channel(self.id, errors.ChannelError(
                    errors.PRECONDITION_FAILED,
                    f"delivery acknowledgement on channel {self.id} timed out. Timeout value "
                    f"used: {round((timeout or 0) * 1000)} ms. This timeout value can be "
                    "configured, see consumers doc guide to learn more"))
                return
        self._timeout_timer = self.session.vhost.timers.call_at(
            min(deadlines), self._check_timeouts)

    def get(self, queue: Queue, no_ack: bool) -> None:
        """Basic.Get: one message or Get-Empty."""
        queue.touch()
        entry = queue.pop()
        stats, queue_stats = self.stats, queue.stats
        if entry is None:
            stats.get_empty += 1
            queue_stats.get_empty += 1
            self.sink.send_method(self.id, commands.Basic.GetEmpty())
            return
        self.next_tag += 1
        tag = self.next_tag
        if entry.redelivered:
            stats.redeliver += 1
            queue_stats.redeliver += 1
        if no_ack:
            stats.get_no_ack += 1
            queue_stats.get_no_ack += 1
            queue.settle(entry)
        else:
            stats.get += 1
            queue_stats.get += 1
            self.unacked[tag] = Unacked(queue, entry, None)
        message = entry.message
        self.sink.send_content(self.id, commands.Basic.GetOk(
            delivery_tag=tag, redelivered=entry.redelivered, exchange=message.exchange,
            routing_key=message.routing_key, message_count=queue.message_count), message)

    def _take(self, tag: int, multiple: bool) -> list[Unacked]:
        """Remove and return the deliveries an ack/nack/reject names; 406 when unknown."""
        unacked = self.unacked
        if (tag != 0 and tag not in unacked) or (tag == 0 and not multiple):
            raise errors.unknown_delivery_tag(tag)
        if multiple:
            taken = []
            while unacked and (tag == 0 or next(iter(unacked)) <= tag):
                taken.append(unacked.popitem(last=False)[1])
        else:
            taken = [unacked.pop(tag)]
        for record in taken:
            if record.consumer is not None:
                record.consumer.unacked -= 1
                self.unacked_count -= 1
        return taken

    def ack(self, tag: int, multiple: bool) -> None:
        if self.tx is not None:
            self._check_tag(tag, multiple)
            self.tx.append(("ack", (tag, multiple)))
            return
        taken = self._take(tag, multiple)
        self.stats.ack += len(taken)
        for record in taken:
            record.queue.stats.ack += 1
            record.queue.settle(record.entry)
        self._resume({r.queue for r in taken})

    def reject(self, tag: int, multiple: bool, requeue: bool) -> None:
        if self.tx is not None:
            self._check_tag(tag, multiple)
            self.tx.append(("reject", (tag, multiple, requeue)))
            return
        taken = self._take(tag, multiple)
        if requeue:
            for record in reversed(taken):
                record.queue.requeue(record.entry)
        else:
            for record in taken:
                record.queue.discard(record.entry, "rejected")
        self._resume({r.queue for r in taken})

    def _check_tag(self, tag: int, multiple: bool) -> None:
        if (tag != 0 and tag not in self.unacked) or (tag == 0 and not multiple):
            raise errors.unknown_delivery_tag(tag)

    def _resume(self, queues: set[Queue]) -> None:
        """Credit came back: let the queues that lost an unacked message deliver again
        (with a channel-wide prefetch, every queue this channel consumes from)."""
        for queue in queues:
            queue.dispatch()
        if self.prefetch:
            for queue in {c.queue for c in self.consumers.values()} - queues:
                queue.dispatch()

    def recover(self) -> None:
        """Basic.Recover requeue=true: every unacked delivery goes back, redelivered."""
        self.requeue_all()

    def requeue_all(self) -> None:
        records = list(self.unacked.values())
        self.unacked.clear()
        self.unacked_count = 0
        for record in reversed(records):
            if record.consumer is not None:
                record.consumer.unacked -= 1
            record.queue.requeue(record.entry)
        self._resume({r.queue for r in records})

    # --- consumers ---------------------------------------------------------------

    def cancel(self, tag: str) -> Consumer | ReplyConsumer | None:
        reply = self.reply_consumer
        if reply is not None and reply.tag == tag:
            self.session.vhost.reply_channels.pop(self.reply_token, None)
            self.reply_consumer = None
            return reply
        consumer = self.consumers.pop(tag, None)
        if consumer is not None:
            queue = consumer.queue
            queue.remove_consumer(consumer)
            self.session.vhost.consumer_gone(queue)
        return consumer

    # --- the frontend interface (broker.frontend.ChannelModel) -------------------------

    def publish(self, args: tuple[str, str, bool, bool], message: Message) -> None:
        _basic.publish(self, args, message)

    def select_confirms(self) -> None:
        _confirm.select(self, commands.Confirm.Select(nowait=True))

    def consume(self, queue: str, *, tag: str = "", no_ack: bool = False,
                exclusive: bool = False, arguments: dict[str, Any] | None = None) -> None:
        _basic.consume(self, commands.Basic.Consume(
            queue=queue, consumer_tag=tag, no_ack=no_ack, exclusive=exclusive, nowait=True,
            arguments=arguments))

    def set_credit(self, prefetch: int, *, whole_channel: bool = False) -> None:
        _basic.set_prefetch(self, prefetch, whole_channel)

    def declare_queue(self, name: str, *, durable: bool = False, exclusive: bool = False,
                      auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None) -> None:
        _queue.declare(self, commands.Queue.Declare(
            queue=name, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
            nowait=True, arguments=arguments))

    def declare_exchange(self, name: str, exchange_type: str, *, durable: bool = False,
                         auto_delete: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        _exchange.declare(self, commands.Exchange.Declare(
            exchange=name, exchange_type=exchange_type, durable=durable,
            auto_delete=auto_delete, nowait=True, arguments=arguments))

    def bind_queue(self, queue: str, exchange: str, routing_key: str = "",
                   arguments: dict[str, Any] | None = None) -> None:
        _queue.bind(self, commands.Queue.Bind(
            queue=queue, exchange=exchange, routing_key=routing_key, nowait=True,
            arguments=arguments))

    def unbind_queue(self, queue: str, exchange: str, routing_key: str = "",
                     arguments: dict[str, Any] | None = None) -> None:
        _queue.unbind(self, commands.Queue.Unbind(
            queue=queue, exchange=exchange, routing_key=routing_key, arguments=arguments))

    def delete_queue(self, name: str) -> None:
        _queue.delete(self, commands.Queue.Delete(queue=name, nowait=True))

    def consumer_cancelled_by_server(self, consumer: Consumer) -> None:
        """The queue went away: forget the consumer and tell the client if it listens."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        if self.session.cancel_notify:
            self.sink.notify(self.id, commands.Basic.Cancel(consumer.tag, nowait=True))

    # --- publisher confirms ------------------------------------------------------------

    def confirm_publish(self, seq: int, ack: bool) -> None:
        """Record the outcome of publish `seq`; acks are coalesced until `flush_confirms`."""
        if ack:
            self.confirm_pending = seq
            self.session.dirty_channels.add(self)
            return
        self.flush_confirms()
        self.sink.send_confirm(self.id, seq, False, False)
        self.confirmed_upto = seq

    def flush_confirms(self) -> None:
        pending = self.confirm_pending
        if pending > self.confirmed_upto:
            self.sink.send_confirm(self.id, pending, pending - self.confirmed_upto > 1, True)
            self.confirmed_upto = pending

    # --- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """The channel is gone: cancel its consumers, requeue what it had not acked."""
        for tag in list(self.consumers):
            self.cancel(tag)
        if self.reply_consumer is not None:
            self.cancel(self.reply_consumer.tag)
        self.requeue_all()
        self.session.vhost.closed_channel_stats.add(self.stats)
        self.tx = None
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
            self._timeout_timer = None


# The AMQP class handlers implement the frontend methods above; they import this module,
# so they are imported once `Channel` exists.
from amqpbroker.broker.handlers import basic as _basic  # noqa: E402
from amqpbroker.broker.handlers import confirm as _confirm  # noqa: E402
from amqpbroker.broker.handlers import exchange as _exchange  # noqa: E402
from amqpbroker.broker.handlers import queue as _queue  # noqa: E402
