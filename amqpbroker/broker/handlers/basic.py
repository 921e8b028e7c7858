"""Basic class: publish, consume, cancel, get, ack, nack, reject, qos, recover.

Publish, Ack, Nack and Reject are the hot path: their arguments arrive as plain tuples
from the struct codec, not as pamqp objects.
"""

from __future__ import annotations

from typing import Any

from pamqp import commands

from amqpbroker import errors, names
from amqpbroker.broker.arguments import check_expiration
from amqpbroker.broker.channel import Channel
from amqpbroker.broker.consumer import Consumer
from amqpbroker.broker.exchange import Exchange
from amqpbroker.broker.handlers.queue import queue_name
from amqpbroker.broker.message import Message


def publish(channel: Channel, args: tuple[str, str, bool, bool], message: Message) -> None:
    exchange_name, _, mandatory, immediate = args
    if immediate:
        raise errors.not_implemented("immediate=true")
    session = channel.session
    if message.expiration is not None:
        check_expiration(message.expiration)
    if message.user_id is not None and message.user_id != session.username:
        raise errors.user_id_mismatch(message.user_id, session.username)
    vhost = session.vhost
    exchange = None
    if exchange_name:
        exchange = vhost.exchanges.get(exchange_name)
        if exchange is None:
            raise errors.exchange_not_found(exchange_name, vhost.name)
        if exchange.internal:
            raise errors.internal_exchange_publish(exchange_name, vhost.name)
    if channel.tx is not None:
        channel.tx.append(("publish", (exchange, mandatory, message)))
        return
    route_and_enqueue(channel, exchange, mandatory, message)


def route_and_enqueue(channel: Channel, exchange: Exchange | None, mandatory: bool,
                      message: Message) -> None:
    """Route a publish (`exchange` None: the default exchange), enqueue it, return it if
    unroutable and mandatory, then confirm it."""
    vhost = channel.session.vhost
    if exchange is not None:
        queues: Any = vhost.route(exchange, message)
    else:
        queue = vhost.queues.get(message.routing_key)
        queues = (queue,) if queue is not None else ()
    if queues:
        for queue in queues:
            queue.enqueue(message)
    elif mandatory:
        channel.sink.send_content(channel.id, commands.Basic.Return(
            reply_code=312, reply_text="NO_ROUTE", exchange=message.exchange,
            routing_key=message.routing_key), message)
    if channel.confirm:
        channel.publish_seq += 1
        channel.confirm_publish(channel.publish_seq, True)


def ack(channel: Channel, args: tuple[int, bool]) -> None:
    channel.ack(args[0], args[1])


def reject(channel: Channel, args: tuple[int, bool]) -> None:
    channel.reject(args[0], False, args[1])


def nack(channel: Channel, args: tuple[int, bool, bool]) -> None:
    channel.reject(args[0], args[1], args[2])


def qos(channel: Channel, method: commands.Basic.Qos) -> None:
    if method.prefetch_size:
        raise errors.not_implemented(f"prefetch_size!=0 ({method.prefetch_size})")
    if method.global_:
        channel.prefetch = method.prefetch_count
    else:
        channel.consumer_prefetch = method.prefetch_count
    channel.sink.send_method(channel.id, commands.Basic.QosOk())
    for consumer in list(channel.consumers.values()):
        consumer.queue.dispatch()


def consume(channel: Channel, method: commands.Basic.Consume) -> None:
    session = channel.session
    queue = session.vhost.queue(queue_name(channel, method.queue), session)
    tag = method.consumer_tag or names.consumer_tag()
    if tag in channel.consumers:
        raise errors.reused_consumer_tag(tag)
    if queue.consumers and (method.exclusive or queue.has_exclusive_consumer()):
        raise errors.exclusive_consume(queue.name, queue.vhost_name)
    consumer = Consumer(channel, queue, tag, method.no_ack, method.exclusive,
                        channel.consumer_prefetch, method.arguments or {})
    channel.consumers[tag] = consumer
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Basic.ConsumeOk(consumer_tag=tag))
    queue.add_consumer(consumer)


def cancel(channel: Channel, method: commands.Basic.Cancel) -> None:
    channel.cancel(method.consumer_tag)
    if not method.nowait:
        channel.sink.send_method(
            channel.id, commands.Basic.CancelOk(consumer_tag=method.consumer_tag))


def get(channel: Channel, method: commands.Basic.Get) -> None:
    session = channel.session
    queue = session.vhost.queue(queue_name(channel, method.queue), session)
    channel.get(queue, method.no_ack)


def recover(channel: Channel, method: commands.Basic.Recover) -> None:
    if not method.requeue:
        raise errors.not_implemented("requeue=false")
    channel.sink.send_method(channel.id, commands.Basic.RecoverOk())
    channel.recover()


def recover_async(channel: Channel, method: commands.Basic.RecoverAsync) -> None:
    if not method.requeue:
        raise errors.not_implemented("requeue=false")
    channel.recover()


HANDLERS = {
    commands.Basic.Ack.index: ack,
    commands.Basic.Reject.index: reject,
    commands.Basic.Nack.index: nack,
    commands.Basic.Qos.index: qos,
    commands.Basic.Consume.index: consume,
    commands.Basic.Cancel.index: cancel,
    commands.Basic.Get.index: get,
    commands.Basic.Recover.index: recover,
    commands.Basic.RecoverAsync.index: recover_async,
}
