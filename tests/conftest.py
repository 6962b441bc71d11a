import jax

jax.config.update("jax_enable_x64", True)

import signal  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _sigint_is_python_default(request):
    """Every test starts with Python's own SIGINT handler (Ctrl-C raises ``KeyboardInterrupt``), whatever an
    earlier test in the same worker process (or a library it started, e.g. a Dask cluster) installed, and a
    test that leaves another handler behind is reported by name. The Ctrl-C tests send SIGINT to their own
    process and rely on it; with a swallowed SIGINT they would run for ever."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    left = signal.getsignal(signal.SIGINT)
    if left is not signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        warnings.warn(f"{request.node.nodeid} left SIGINT handled by {left!r}; restored Python's default",
                      RuntimeWarning)
