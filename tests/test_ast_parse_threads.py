"""Two threads of the test process parse Python at once, as pytest (showing a failure) and a live
server thread (logging a traceback) do, and neither fails: tests/support/ast_lock.py."""

import ast
import gc
import threading
from pathlib import Path


def test_a_parse_meanwhile_in_another_thread_fails_neither():
    source = Path(ast.__file__).read_text(encoding="utf-8")
    main = threading.current_thread()
    parsing = threading.Event()
    others: list[threading.Thread] = []
    errors: list[str] = []

    def parse(who: str) -> None:
        try:
            ast.parse(source)
        except SystemError as error:
            errors.append(f"{who}: {error}")

    def meanwhile(phase: str, info: dict) -> None:
        # A garbage collection inside the main thread's parse runs this Python code; here
        # another thread gets the GIL and parses, as it could at any such moment.
        if phase != "start" or not parsing.is_set() or threading.current_thread() is not main:
            return
        if len(others) < 5:
            other = threading.Thread(target=parse, args=(f"thread {len(others)}",))
            others.append(other)
            other.start()
            other.join(timeout=0.05)  # with the lock: it waits for the main thread's turn

    threshold = gc.get_threshold()
    gc.callbacks.append(meanwhile)
    gc.set_threshold(1)  # a collection at nearly every allocation, the AST constructor's too
    parsing.set()
    try:
        parse("main thread")
    finally:
        parsing.clear()
        gc.set_threshold(*threshold)
        gc.callbacks.remove(meanwhile)
    for other in others:
        other.join()

    assert others  # the other threads did parse meanwhile
    assert errors == []
