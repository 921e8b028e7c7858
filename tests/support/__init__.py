"""What every test suite shares: hand-built AMQP wire encodings (`wire`), the helpers
that start and wait for brokers in other processes (`processes`) and an embedded broker
with a client of its management API (`management`). Importable as
`support` from every suite (pytest's `pythonpath` holds `tests`)."""
