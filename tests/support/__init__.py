"""What every test suite shares: hand-built AMQP wire encodings (`wire`) and the helpers
that start and wait for brokers in other processes (`processes`). Importable as
`support` from every suite (pytest's `pythonpath` holds `tests`)."""
