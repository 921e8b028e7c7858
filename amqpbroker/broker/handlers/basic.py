"""Basic class: publish, consume, cancel, get, ack, nack, reject, qos, recover, and the
RabbitMQ extensions on them: direct reply-to, delayed messages, CC/BCC.

Publish, Ack, Nack and Reject are the hot path: their arguments arrive as plain tuples
from the struct codec, not as pamqp objects.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from pamqp import commands

from amqpbroker import errors, names
from amqpbroker.broker import properties
from amqpbroker.broker.arguments import check_expiration
from amqpbroker.broker.channel import Channel
from amqpbroker.broker.consumer import Consumer, ReplyConsumer
from amqpbroker.broker.exchange import Exchange
from amqpbroker.broker.handlers.queue import queue_name
from amqpbroker.broker.message import Entry, Message

REPLY_TO = names.REPLY_TO
REPLY_TO_PREFIX = names.REPLY_TO_PREFIX
_REPLY_TO_BYTES = REPLY_TO.encode()


def publish(channel: Channel, args: tuple[str, str, bool, bool], message: Message) -> None:
    exchange_name, routing_key, mandatory, immediate = args
    if immediate:
        raise errors.not_implemented("immediate=true")
    session = channel.session
    session.check("write", "exchange", exchange_name)
    if message.expiration is not None:
        check_expiration(message.expiration)
    if message.user_id is not None and message.user_id != session.username:
        raise errors.user_id_mismatch(message.user_id, session.username)
    if _REPLY_TO_BYTES in message.header:
        message = _rewrite_reply_to(channel, message)
    vhost = session.vhost
    exchange = None
    if exchange_name:
        exchange = vhost.exchanges.get(exchange_name)
        if exchange is None:
            raise errors.exchange_not_found(exchange_name, vhost.name)
        if exchange.internal:
            raise errors.internal_exchange_publish(exchange_name, vhost.name)
        if session.topic_permissions:
            session.check_topic("write", exchange_name, routing_key)
    elif routing_key.startswith(REPLY_TO_PREFIX):
        _reply(channel, mandatory, message)
        return
    if channel.tx is not None:
        channel.tx.append(("publish", (exchange, mandatory, message)))
        return
    route_and_enqueue(channel, exchange, mandatory, message)


def route_and_enqueue(channel: Channel, exchange: Exchange | None, mandatory: bool,
                      message: Message) -> None:
    """Route a publish (`exchange` None: the default exchange), enqueue it, return it if
    unroutable and mandatory, then confirm it (nack when a queue refused it)."""
    vhost = channel.session.vhost
    channel.stats.publish += 1
    if exchange is not None and exchange.delayed:
        delay = _delay(message)
        if delay > 0:
            vhost.hold_delayed(exchange, message, delay / 1000.0)
            _confirm(channel, True)
            return
    accepted = True
    queues = vhost.route_message(exchange, message)
    exchange_stats = exchange.stats if exchange is not None else vhost.default_exchange_stats
    exchange_stats.publish_in += 1
    if queues:
        exchange_stats.publish_out += len(queues)
        headers = message._headers
        if headers is not None and "BCC" in headers:
            message = properties.replace(
                message, headers={k: v for k, v in headers.items() if k != "BCC"})
        for queue in queues:
            if not queue.enqueue(message):
                accepted = False
    elif mandatory:
        channel.stats.return_unroutable += 1
        channel.sink.send_content(channel.id, commands.Basic.Return(
            reply_code=312, reply_text="NO_ROUTE", exchange=message.exchange,
            routing_key=message.routing_key), message)
    else:
        channel.stats.drop_unroutable += 1
    _confirm(channel, accepted)


def _confirm(channel: Channel, ack: bool) -> None:
    if channel.confirm:
        channel.stats.confirm += 1
        channel.publish_seq += 1
        channel.confirm_publish(channel.publish_seq, ack)


def _delay(message: Message) -> int:
    value = (message.headers or {}).get("x-delay")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- direct reply-to -------------------------------------------------------------------


def _rewrite_reply_to(channel: Channel, message: Message) -> Message:
    """reply_to=amq.rabbitmq.reply-to becomes this channel's routable reply address."""
    props = properties.decode(message)
    if props.reply_to != REPLY_TO:
        return message
    if channel.reply_consumer is None:
        raise errors.ChannelError(errors.PRECONDITION_FAILED,
                                  "fast reply consumer does not exist")
    return properties.replace(message, reply_to=REPLY_TO_PREFIX + channel.reply_token)


def _reply(channel: Channel, mandatory: bool, message: Message) -> None:
    """A publish to amq.rabbitmq.reply-to.<token> through the default exchange goes
    straight to the requesting channel; unknown or stale addresses are unroutable."""
    token = message.routing_key[len(REPLY_TO_PREFIX):]
    target = channel.session.vhost.reply_channels.get(token)
    if target is not None and target.reply_consumer is not None:
        target.deliver_reply(Entry(0, message, None))
    elif mandatory:
        channel.sink.send_content(channel.id, commands.Basic.Return(
            reply_code=312, reply_text="NO_ROUTE", exchange="",
            routing_key=message.routing_key), message)
    _confirm(channel, True)


def _consume_reply_to(channel: Channel, method: commands.Basic.Consume) -> None:
    if not method.no_ack:
        raise errors.ChannelError(errors.PRECONDITION_FAILED,
                                  "reply consumer cannot acknowledge")
    if channel.reply_consumer is not None:
        raise errors.ChannelError(errors.PRECONDITION_FAILED, "reply consumer already set")
    tag = method.consumer_tag or names.consumer_tag()
    if tag in channel.consumers:
        raise errors.reused_consumer_tag(tag)
    token = base64.urlsafe_b64encode(os.urandom(24)).decode("ascii")
    channel.reply_consumer = ReplyConsumer(channel, tag)
    channel.reply_token = token
    channel.session.vhost.reply_channels[token] = channel
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Basic.ConsumeOk(consumer_tag=tag))


# --- the rest of the Basic class ----------------------------------------------------------


def ack(channel: Channel, args: tuple[int, bool]) -> None:
    channel.ack(args[0], args[1])


def reject(channel: Channel, args: tuple[int, bool]) -> None:
    channel.reject(args[0], False, args[1])


def nack(channel: Channel, args: tuple[int, bool, bool]) -> None:
    channel.reject(args[0], args[1], args[2])


def qos(channel: Channel, method: commands.Basic.Qos) -> None:
    if method.prefetch_size:
        raise errors.not_implemented(f"prefetch_size!=0 ({method.prefetch_size})")
    set_prefetch(channel, method.prefetch_count, method.global_)
    channel.sink.send_method(channel.id, commands.Basic.QosOk())
    for consumer in list(channel.consumers.values()):
        consumer.queue.dispatch()


def set_prefetch(channel: Channel, count: int, whole_channel: bool) -> None:
    """The credit of the channel's consumers: per consumer, or shared by the channel."""
    if whole_channel:
        channel.prefetch = count
    else:
        channel.consumer_prefetch = count


def _timeout(channel: Channel, queue_timeout: float | None, arguments: dict[str, Any]
             ) -> float | None:
    value = arguments.get("x-consumer-timeout")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value / 1000.0
    return queue_timeout if queue_timeout is not None else channel.session.consumer_timeout


def consume(channel: Channel, method: commands.Basic.Consume) -> None:
    session = channel.session
    name = queue_name(channel, method.queue)
    if name == REPLY_TO:
        _consume_reply_to(channel, method)
        return
    session.check("read", "queue", name)
    queue = session.vhost.queue(name, session)
    tag = method.consumer_tag or names.consumer_tag()
    reply = channel.reply_consumer
    if tag in channel.consumers or (reply is not None and reply.tag == tag):
        raise errors.reused_consumer_tag(tag)
    if queue.queue_type == "quorum" and channel.prefetch:
        raise errors.not_implemented(
            f"queue '{queue.name}' in vhost '{queue.vhost_name}' does not support global qos")
    if queue.queue_type == "stream":
        if not channel.consumer_prefetch and not channel.prefetch:
            raise errors.ChannelError(
                errors.PRECONDITION_FAILED,
                f"consumer prefetch count is not set for 'queue '{queue.name}' in vhost "
                f"'{queue.vhost_name}''")
        raise errors.not_implemented("stream queues are not supported by amqpbroker")
    if queue.consumer_count and (method.exclusive or queue.has_exclusive_consumer()):
        raise errors.exclusive_consume(queue.name, queue.vhost_name)
    arguments = method.arguments or {}
    consumer = Consumer(channel, queue, tag, no_ack=method.no_ack, exclusive=method.exclusive,
                        prefetch=channel.consumer_prefetch, arguments=arguments,
                        timeout=_timeout(channel, queue.consumer_timeout, arguments))
    channel.consumers[tag] = consumer
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Basic.ConsumeOk(consumer_tag=tag))
    queue.add_consumer(consumer)


def cancel(channel: Channel, method: commands.Basic.Cancel) -> None:
    """Cancel-Ok goes out before what the cancel causes (a single active consumer's
    successor getting deliveries, an auto-delete queue going)."""
    if not method.nowait:
        channel.sink.send_method(
            channel.id, commands.Basic.CancelOk(consumer_tag=method.consumer_tag))
    channel.cancel(method.consumer_tag or "")


def get(channel: Channel, method: commands.Basic.Get) -> None:
    session = channel.session
    name = queue_name(channel, method.queue)
    session.check("read", "queue", name)
    queue = session.vhost.queue(name, session)
    if queue.queue_type == "stream":
        raise errors.not_implemented(
            f"basic.get not supported by stream queues queue '{queue.name}' in vhost "
            f"'{queue.vhost_name}'")
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


HANDLERS: dict[int, Callable[..., None]] = {
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
