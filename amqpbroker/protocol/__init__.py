"""Sans-IO AMQP 0-9-1: bytes in, frames and commands out; no sockets, no await, no clock."""
