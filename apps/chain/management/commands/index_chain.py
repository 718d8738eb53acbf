import time

from django.core.management.base import BaseCommand, CommandError

from apps.chain.chains import ChainNotConfigured
from apps.chain.checkpoint import IndexerBusy
from apps.chain.indexer import index_chain
from apps.chain.tasks import TRANSIENT


class Command(BaseCommand):
    help = "Index a chain's registry and NFT events up to its safe head (and keep following)."

    def add_arguments(self, parser):
        parser.add_argument("--chain", required=True, help="CAIP-2 id, e.g. eip155:1.")
        parser.add_argument("--from-block", type=int, help="Re-index from this block.")
        parser.add_argument("--follow", action="store_true", help="Keep indexing new blocks.")
        parser.add_argument(
            "--interval", type=float, default=2.0, help="Seconds between rounds with --follow."
        )

    def handle(
        self, *args, chain: str, from_block: int | None, follow: bool, interval: float, **options
    ):
        first = True
        while True:
            try:
                report = index_chain(caip2=chain, from_block=from_block if first else None)
            except ChainNotConfigured as error:
                raise CommandError(str(error)) from error
            except (IndexerBusy, *TRANSIENT) as error:
                if not follow:
                    raise CommandError(str(error)) from error
                # The beat's indexer holds the chain, or the node hiccuped: try again shortly.
                self.stderr.write(f"{chain}: {error}; retrying in {interval} s")
                time.sleep(interval)
                continue
            first = False
            self.stdout.write(
                f"{chain}: indexed to {report.indexed_to} (head {report.head}), "
                f"{report.events} events in {report.batches} batches"
                + (
                    f", {report.reorgs} reorg(s), {report.rolled_back} events rolled back"
                    if report.reorgs
                    else ""
                )
            )
            if not follow:
                return
            time.sleep(interval)
