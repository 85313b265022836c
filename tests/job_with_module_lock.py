"""A job whose module holds a lock (tests/test_job_processes.py): a job process that inherited
the lock taken by another thread of the stage would wait on it for ever."""

import threading

LOCK = threading.Lock()


def worker(job: int, arg: int, progress) -> int:
    with LOCK:
        progress(1)
        return arg * 10
