"""§2.5 qos / recover / flow / tx / confirm errors and the matching "Ok" cases."""

from __future__ import annotations

from amqp_conformance import Basic, Chan, Channel, Confirm, Tx, bits, method_frame


def test_qos_prefetch_size_not_implemented(ch: Chan) -> None:
    ch.send(Basic.Qos(prefetch_size=1))
    ch.expect_connection_close(540, "NOT_IMPLEMENTED - prefetch_size!=0 (1)", 60, 10)


def test_recover_requeue_false_not_implemented(ch: Chan) -> None:
    ch.send(Basic.Recover(requeue=False))
    ch.expect_connection_close(540, "NOT_IMPLEMENTED - requeue=false", 60, 110)


def test_flow_active_false_not_implemented(ch: Chan) -> None:
    ch.send(Channel.Flow(active=False))
    ch.expect_connection_close(540, "NOT_IMPLEMENTED - active=false", 20, 20)


def test_tx_select_on_confirm_channel(ch: Chan) -> None:
    ch.call(Confirm.Select(), Confirm.SelectOk)
    ch.send(Tx.Select())
    ch.expect_channel_close(406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
                            90, 10)


def test_confirm_select_on_tx_channel(ch: Chan) -> None:
    ch.call(Tx.Select(), Tx.SelectOk)
    ch.send(Confirm.Select())
    ch.expect_channel_close(406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
                            85, 10)


def test_tx_commit_without_select(ch: Chan) -> None:
    ch.send(Tx.Commit())
    ch.expect_channel_close(406, "PRECONDITION_FAILED - channel is not transactional", 90, 20)


def test_tx_rollback_without_select(ch: Chan) -> None:
    ch.send(Tx.Rollback())
    ch.expect_channel_close(406, "PRECONDITION_FAILED - channel is not transactional", 90, 30)


def test_qos_global_true_ok(ch: Chan) -> None:
    ch.call(Basic.Qos(prefetch_count=10, global_=True), Basic.QosOk)
    ch.sync()


def test_qos_prefetch_count_65535_ok(ch: Chan) -> None:
    ch.call(Basic.Qos(prefetch_count=65535), Basic.QosOk)
    ch.sync()


def test_flow_active_true_ok(ch: Chan) -> None:
    ok = ch.call(Channel.Flow(active=True), Channel.FlowOk)
    assert ok.active is True


def test_tx_select_twice_ok(ch: Chan) -> None:
    ch.call(Tx.Select(), Tx.SelectOk)
    ch.call(Tx.Select(), Tx.SelectOk)
    ch.call(Tx.Commit(), Tx.CommitOk)


def test_confirm_select_twice_ok(ch: Chan) -> None:
    ch.call(Confirm.Select(), Confirm.SelectOk)
    ch.call(Confirm.Select(), Confirm.SelectOk)
    ch.publish("amq.direct", "nowhere", b"x")
    ack = ch.wait(Basic.Ack)
    assert (ack.delivery_tag, ack.multiple) == (1, False)


def test_recover_async_gets_no_reply(ch: Chan) -> None:
    ch.send_raw(method_frame(ch.number, 60, 100, bits(True)))  # Basic.RecoverAsync
    ch.sync()
    assert ch.take(Basic.RecoverOk) == []


def test_confirm_select_nowait_gets_no_reply(ch: Chan) -> None:
    ch.send(Confirm.Select(nowait=True))
    ch.sync()
    assert ch.take(Confirm.SelectOk) == []
    ch.publish("amq.direct", "nowhere", b"x")
    assert ch.wait(Basic.Ack).delivery_tag == 1
