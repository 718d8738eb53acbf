"""Every write to an upload while it receives bytes: create, append (PATCH), terminate.

Split by responsibility: ``creating`` creates an upload within the user's quota, for a new content
or a draft; ``receiving`` checks an upload's offset, appends PATCH bodies under the write lease and
completes the upload at its last byte; ``ending`` terminates an upload and deletes the bytes of
uploads that ended; ``outage`` turns failed storage into a 503. Callers import from those
modules. Finalisation and the reaper live in ``apps/uploads/finalize.py``; the write lease in
``apps/uploads/lease.py``.

State changes are claimed with conditional UPDATEs (the lease, RECEIVING -> TERMINATED, …) before
anything irreversible happens, so a PATCH, a termination, the reaper and finalisation never act
on the same upload at once; bytes of an upload that ended are deleted after the claim, and
``discarded_at`` records it (the reaper retries deletions that failed).
"""
