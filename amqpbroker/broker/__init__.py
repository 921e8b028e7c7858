"""The broker model: synchronous and pure, never awaits, never touches IO."""
