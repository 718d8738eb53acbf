"""Backups: one archive with the database and every media file, restored into a fresh stack.

What an archive holds (a folder, or the same as one tar file):

- ``manifest.json``: format version, time, app release, the migrations applied, the database
  engine and dump tool, what the storage was, and every file with its size and SHA-256;
- ``database.pgdump`` (PostgreSQL, ``pg_dump --format=custom``: one consistent snapshot) or
  ``database.sqlite3`` (the embedded mode, SQLite's online backup API: a consistent copy while
  the web and worker go on writing);
- ``media/``: every file of the media storage (local disk: MEDIA_ROOT; S3: every object of the
  bucket under the storage's location, with its Content-Type and Cache-Control).

Not in it, on purpose: MEDIA_MASTER_KEYS (or, when they are unset, DJANGO_SECRET_KEY, from which
the master key then derives). The database keeps each content key wrapped by a master key
(apps/transcode/keys.py); an archive that also held the master keys would hand over every
content to whoever got a copy. Keep them in the secret store, backed up on their own. The
manifest records a fingerprint of each master key the content keys need (an HMAC, not the key),
so that ``restore`` refuses a stack that could not open them, before it touches anything.
Other secrets (CHAIN_SIGNER_KEY, PLAYBACK_KEYS, S3 and database credentials) stay out too.

Consistency: the database first, then the media. Every writer stores its files before a row
points at them: an upload's source is assembled in storage, then attached to its content
(``upload_finalize`` in apps/uploads/finalize.py, and ``manage.py ingest``); a transcode uploads
all its outputs under the job's prefix, then publishes the job and marks the content ready
(apps/transcode/runner.py ``execute``, then ``publish_job``); a chunked encode uploads each
chunk's encrypted segments before it counts them (``chunks_encrypt``). So every file the dumped
rows name was stored before the dump began, and the media copy made after it finds them. Files
written after the dump (an encode finishing meanwhile) are copied too and are harmless: nothing
in the restored database names them, and re-running that encode replaces them. Not covered is
the other order: a content deleted (or an old job's outputs pruned) between the dump and the
media copy has rows in the archive and files that are not; quiesce deletions during a backup,
or delete such a content again after restoring.

By hand rather than a library: django-dbbackup covers the database and the storage, but not S3
object headers, per-file checksums, migration checks or master-key fingerprints, and it would
add a dependency for some 300 lines of plain stdlib and boto3 here.
"""
