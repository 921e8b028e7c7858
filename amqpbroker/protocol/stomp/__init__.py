"""STOMP 1.0, 1.1 and 1.2: frames (`frames`), the commands a connection yields
(`commands`) and the connection state machine (`connection`). Sans-IO."""
