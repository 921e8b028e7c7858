"""AMQP 0-9-1, sans-IO: frames, the struct codec of the hot methods, command assembly and
the connection state machine, which turns bytes into commands."""
