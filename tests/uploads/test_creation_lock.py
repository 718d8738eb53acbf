"""An upload being created locks its creator's row against other creations only.

``upload_create`` serialises a creator's creations on the user row (the quota check). Taken
FOR UPDATE, that lock also stopped every foreign-key check on the user (FOR KEY SHARE) until the
creation committed: finalising another of the creator's uploads re-updates its content row and
so checks ``content.owner`` at COMMIT. The soak saw what that costs when the creation never
commits (its connection orphaned, tests/streamgate/test_orphaned_transactions.py): the
finalisation waited for ever inside its transaction, a resent one then waited on that one's
upload row, and the worker's two processes sat still until they were killed. FOR NO KEY UPDATE
still serialises creations and lets the key checks through.
"""

import threading

import pytest
from django.db import connection, connections, transaction

from apps.uploads.services.creating import upload_create
from apps.uploads.tasks import upload_finalize
from tests.support.media import make_video
from tests.uploads.conftest import upload_of


@pytest.mark.django_db(transaction=True)
def test_a_creation_under_way_does_not_hold_up_a_finalisation(creator, tus_for, tmp_path):
    data = make_video(tmp_path / "clip.mp4", seconds=1).read_bytes()
    upload = upload_of(tus_for(creator).upload(data, chunk=len(data), filename="clip.mp4"))
    holding, release = threading.Event(), threading.Event()

    def creation_left_open() -> None:  # another request of the creator, mid-transaction
        try:
            with transaction.atomic():
                upload_create(owner=creator, length=1000, metadata_header=None)
                holding.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=creation_left_open)
    thread.start()
    try:
        assert holding.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")  # a lock wait fails instead of hanging
        assert upload_finalize.run(str(upload.id)) == "finalized"
    finally:
        release.set()
        thread.join()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
