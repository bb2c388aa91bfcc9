"""Pure domain: definitions, validation, step types, expressions, the run state machine and the executor."""
