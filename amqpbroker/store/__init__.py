"""Storage ports and adapters: what survives a restart (durable definitions and
persistent messages), behind one interface."""
