"""Sans-IO wire protocols: bytes in, commands out; no sockets, no await, no clock, and
nothing imported from the layers above. One package per protocol (`amqp/`)."""
