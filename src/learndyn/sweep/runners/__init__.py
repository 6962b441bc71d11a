"""Built-in sweep runners, one module per theory; each is imported only when a config names it
(see :data:`learndyn.sweep.registry.BUILTIN_RUNNERS`)."""
